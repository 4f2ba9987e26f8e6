//! The DNS side: A queries for the service name get the chosen nodes; the client is the EDNS
//! client subnet when the query carries one (a resolver asking for a client), else the address
//! the query came from.

use crate::choose::choose;
use crate::health::HealthBoard;
use hickory_proto::op::{Edns, Header, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};
use hickory_server::net::runtime::Time;
use hickory_server::net::NetError;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use pixelmill_regions::Regions;
use std::net::IpAddr;
use std::sync::Arc;

pub struct GeoHandler {
    pub name: LowerName,
    pub ttl: u32,
    pub regions: Arc<Regions>,
    pub board: HealthBoard,
}

impl GeoHandler {
    fn client_subnet(request: &Request) -> Option<ClientSubnet> {
        match request.edns.as_ref()?.option(EdnsCode::Subnet)? {
            EdnsOption::Subnet(subnet) => Some(*subnet),
            _ => None,
        }
    }
}

#[async_trait::async_trait]
impl RequestHandler for GeoHandler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let ecs = Self::client_subnet(request);
        let client: IpAddr = ecs.map_or(request.src().ip(), |s| s.addr());
        let mut edns = None;
        if let Some(asked) = request.edns.as_ref() {
            let mut ours = Edns::new();
            ours.set_max_payload(asked.max_payload().max(512));
            edns = Some(ours);
        }
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.authoritative = true;

        let query = match request.request_info() {
            Ok(info) if request.metadata.op_code == OpCode::Query => info.query,
            _ => {
                return send_code(
                    request,
                    &mut response_handle,
                    edns.as_ref(),
                    ResponseCode::FormErr,
                )
                .await
            }
        };
        if *query.name() != self.name {
            return send_code(
                request,
                &mut response_handle,
                edns.as_ref(),
                ResponseCode::NXDomain,
            )
            .await;
        }
        if query.query_type() != RecordType::A {
            // The name exists but has no records of this type (IPv4 only): NOERROR, no answer.
            let response = MessageResponseBuilder::new(&request.queries, edns.as_ref())
                .build_no_records(metadata);
            return sent(request, response_handle.send_response(response).await);
        }
        let healthy = self.board.healthy();
        let choice = choose(&self.regions, &healthy, client);
        if let (Some(ours), Some(asked)) = (edns.as_mut(), ecs) {
            let scope = ClientSubnet::new(asked.addr(), asked.source_prefix(), choice.scope);
            ours.options_mut().insert(EdnsOption::Subnet(scope));
        }
        if choice.addrs.is_empty() {
            tracing::warn!(%client, "no region has a healthy node; answering SERVFAIL");
            return send_code(
                request,
                &mut response_handle,
                edns.as_ref(),
                ResponseCode::ServFail,
            )
            .await;
        }
        let owner = Name::from(query.name().clone());
        let records: Vec<Record> = choice
            .addrs
            .iter()
            .filter_map(|ip| match ip {
                IpAddr::V4(v4) => Some(Record::from_rdata(
                    owner.clone(),
                    self.ttl,
                    RData::A(A(*v4)),
                )),
                IpAddr::V6(_) => None,
            })
            .collect();
        tracing::debug!(%client, region = ?choice.region, answers = records.len(), "answered");
        let response = MessageResponseBuilder::new(&request.queries, edns.as_ref()).build(
            metadata,
            records.iter(),
            [],
            [],
            [],
        );
        sent(request, response_handle.send_response(response).await)
    }
}

/// What was sent, or SERVFAIL when sending failed.
fn sent(request: &Request, result: Result<ResponseInfo, NetError>) -> ResponseInfo {
    result.unwrap_or_else(|err| {
        tracing::warn!(%err, "could not send a DNS answer");
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.response_code = ResponseCode::ServFail;
        Header {
            metadata,
            counts: Default::default(),
        }
        .into()
    })
}

async fn send_code<R: ResponseHandler>(
    request: &Request,
    handle: &mut R,
    edns: Option<&Edns>,
    code: ResponseCode,
) -> ResponseInfo {
    let response =
        MessageResponseBuilder::new(&request.queries, edns).error_msg(&request.metadata, code);
    sent(request, handle.send_response(response).await)
}
