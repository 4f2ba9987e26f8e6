//! The `api` role: serves the axum router. If the server task dies the actor fails and its
//! supervisor starts a new one on the same address.

use pixelmill_api::AppState;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct ApiActor;

pub struct ApiArgs {
    pub state: AppState,
    pub addr: SocketAddr,
    /// The listener bound at start-up (so start-up fails early on a taken port); a restart binds anew.
    pub listener: Arc<Mutex<Option<TcpListener>>>,
    /// How long a client may take to send a request's headers.
    pub header_read_timeout: Duration,
}

pub enum ApiMsg {
    ServerExited(String),
}

pub struct ApiRunning {
    shutdown: Option<oneshot::Sender<()>>,
    server: JoinHandle<()>,
}

impl Actor for ApiActor {
    type Msg = ApiMsg;
    type State = ApiRunning;
    type Arguments = ApiArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<ApiMsg>,
        args: ApiArgs,
    ) -> Result<ApiRunning, ActorProcessingErr> {
        let bound = args
            .listener
            .lock()
            .map_err(|_| "listener lock poisoned")?
            .take();
        let listener = match bound {
            Some(listener) => listener,
            None => TcpListener::bind(args.addr).await?,
        };
        let (shutdown, stopped) = oneshot::channel::<()>();
        let app = pixelmill_api::router(args.state);
        let header_read_timeout = args.header_read_timeout;
        let server = tokio::spawn(async move {
            let stop = async {
                let _ = stopped.await;
            };
            crate::http::serve(listener, app, header_read_timeout, stop).await;
            let _ = myself.cast(ApiMsg::ServerExited("the server stopped".to_owned()));
        });
        Ok(ApiRunning {
            shutdown: Some(shutdown),
            server,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<ApiMsg>,
        msg: ApiMsg,
        _state: &mut ApiRunning,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ApiMsg::ServerExited(why) => Err(why.into()),
        }
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<ApiMsg>,
        state: &mut ApiRunning,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(shutdown) = state.shutdown.take() {
            let _ = shutdown.send(());
        }
        // In-flight requests get a moment to finish; long-lived event streams are cut after it.
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut state.server).await;
        state.server.abort();
        Ok(())
    }
}
