//! `agentMonitor.viewerLogin`: a single-use login link for a user at a pair's viewer, minted
//! by the front door's key; the user becomes authorised for the pair (docs/frontdoor.md).

use std::sync::Arc;

use dxr::Value;
use vrun_proto::frontdoor::{LoginReply, ViewerLogin};
use vrun_proto::RpcError;

use crate::daemon::Daemon;

pub async fn run(m: Arc<Daemon>, params: Vec<Value>) -> Result<Value, RpcError> {
    let req = ViewerLogin::from_params(&params)?;
    let Some(fd) = m.front_door.clone() else {
        return Ok(LoginReply { url: String::new(), token: String::new(), expires: 0 }.to_value());
    };
    let (url, token, expires) =
        m.store.write(move |c| crate::frontdoor::access::mint(c, &fd, &req.pair, req.user.as_deref())).await?;
    Ok(LoginReply { url, token, expires }.to_value())
}
