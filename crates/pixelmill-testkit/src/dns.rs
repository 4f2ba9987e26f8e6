//! A DNS authority on a loopback port with fixed answers, so tests can give webhook hosts any
//! address (inside ones included) without touching the machine's resolver or sending a packet
//! to those addresses: the node is pointed at it with `PIXELMILL_OUTBOUND_DNS`.

use hickory_proto::op::{Metadata, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo, Server};
use hickory_server::zone_handler::MessageResponseBuilder;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

/// Answers A and AAAA queries for its names; NXDOMAIN for any other name.
pub struct Dns {
    pub addr: SocketAddr,
    _server: Server<Zone>,
}

struct Zone {
    names: HashMap<LowerName, Vec<IpAddr>>,
}

impl Dns {
    /// Serves `records` (name, address; a name may repeat) over UDP and TCP on one loopback port.
    pub async fn start(records: &[(&str, IpAddr)]) -> Dns {
        let mut names: HashMap<LowerName, Vec<IpAddr>> = HashMap::new();
        for (name, addr) in records {
            let name = Name::from_str(name).expect("a DNS name");
            names.entry(LowerName::new(&name)).or_default().push(*addr);
        }
        let udp = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind DNS UDP");
        let addr = udp.local_addr().expect("DNS address");
        let tcp = tokio::net::TcpListener::bind(addr)
            .await
            .expect("bind DNS TCP");
        let mut server = Server::new(Zone { names });
        server.register_socket(udp);
        server.register_listener(tcp, Duration::from_secs(5), 16);
        Dns {
            addr,
            _server: server,
        }
    }
}

#[async_trait::async_trait]
impl RequestHandler for Zone {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut handle: R,
    ) -> ResponseInfo {
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.authoritative = true;
        let builder = MessageResponseBuilder::new(&request.queries, None);
        let Ok(info) = request.request_info() else {
            let response = builder.error_msg(&request.metadata, ResponseCode::FormErr);
            return handle
                .send_response(response)
                .await
                .expect("DNS answer sent");
        };
        let query = info.query;
        let Some(addrs) = self.names.get(query.name()) else {
            let response = builder.error_msg(&request.metadata, ResponseCode::NXDomain);
            return handle
                .send_response(response)
                .await
                .expect("DNS answer sent");
        };
        let owner = Name::from(query.name().clone());
        let records: Vec<Record> = addrs
            .iter()
            .filter_map(|addr| match (addr, query.query_type()) {
                (IpAddr::V4(v4), RecordType::A) => Some(RData::A(A(*v4))),
                (IpAddr::V6(v6), RecordType::AAAA) => Some(RData::AAAA(AAAA(*v6))),
                _ => None,
            })
            .map(|rdata| Record::from_rdata(owner.clone(), 60, rdata))
            .collect();
        let response = builder.build(metadata, records.iter(), [], [], []);
        handle
            .send_response(response)
            .await
            .expect("DNS answer sent")
    }
}
