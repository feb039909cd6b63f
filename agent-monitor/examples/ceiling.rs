//! The HTTP ceiling for `scripts/bench`: the least any server on this machine can do per
//! XML-RPC call. An axum handler on `POST /RPC2` answering a constant `methodResponse` the
//! size of agent-monitor's `isViewerAvailable` answer, on the same runtime set-up as
//! agent-monitor (`tokio::runtime::Runtime::new()`), so that wrk's load against it measures
//! the machine, the kernel's loopback and hyper, not agent-monitor.
//!
//! `cargo run --release -p agent-monitor --example ceiling -- 127.0.0.1:18085`
//! (`-- --print-body` prints the answer and exits: `scripts/bench`'s nginx ceiling answers the
//! same bytes).

use axum::http::header;
use axum::routing::post;

const BODY: &str = "<?xml version=\"1.0\"?><methodResponse><params><param><value><struct>\
<member><name>ready</name><value><int>1</int></value></member>\
<member><name>address</name><value><string>127.0.0.1:40000</string></value></member>\
<member><name>apikey</name><value><string>0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef</string></value></member>\
<member><name>urluuid</name><value><string>proxy-1b4e28ba-2fa1-11d2-883f-0016d3cca427</string></value></member>\
<member><name>state</name><value><string>ready</string></value></member>\
<member><name>generation</name><value><i8>1</i8></value></member>\
</struct></value></param></params></methodResponse>";

fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:18085".into());
    if addr == "--print-body" {
        print!("{BODY}");
        return Ok(());
    }
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let app = axum::Router::new().route("/RPC2", post(|| async { ([(header::CONTENT_TYPE, "text/xml")], BODY) }));
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        println!("ceiling listening on {}", listener.local_addr()?);
        axum::serve(listener, app).await
    })
}
