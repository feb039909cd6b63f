//! Method names and their typed requests and replies.
//!
//! Each request type has `from_params` (server side: validates at the edge, so handlers only
//! see checked values) and `to_params` (client side). Replies have `to_value` / `from_value`.
//! Reply decoding ignores unknown members so that old clients keep working with newer daemons.

use dxr::Value;

use crate::fault::RpcError;
use crate::names::Pair;
use crate::state::ViewerState;
use crate::value::{positional_strings, StructBuilder, StructReader, StructSink};
use crate::wire::StructAnswer;

pub const LAUNCH_VIEWER: &str = "agentMonitor.launchViewer";
pub const IS_VIEWER_AVAILABLE: &str = "agentMonitor.isViewerAvailable";
pub const SET_VIEWER_STATE: &str = "agentMonitor.setViewerState";
pub const HEARTBEAT: &str = "agentMonitor.heartbeat";
pub const ABORT_VIEWER: &str = "agentMonitor.abortViewer";
pub const STORE_VIEWER: &str = "agentMonitor.storeviewer";
pub const VIEWER_STATUS: &str = "agentMonitor.viewerStatus";
pub const LIST_VIEWERS: &str = "agentMonitor.listViewers";
pub const CLAIM_PUSH: &str = "agentMonitor.claimPush";
pub const PUSH_DONE: &str = "agentMonitor.pushDone";
pub const HOST_INFO: &str = "agentMonitor.hostInfo";
pub const FETCH_JOB: &str = "agentMonitor.fetchJob";
pub const FETCH_VIEWER_DB: &str = "agentMonitor.fetchViewerDb";
/// A node's DomainMonitor reports its domains (see [`crate::node`]).
pub const NODE_INVENTORY: &str = "agentMonitor.nodeInventory";
/// A node's DomainMonitor salvaged a domain whose job was gone (see [`crate::node`]).
pub const NODE_SALVAGED: &str = "agentMonitor.nodeSalvaged";
pub use crate::frontdoor::VIEWER_LOGIN;
pub const KILL_VIEWER: &str = "agentMonitor.killViewer";
pub const DELETE_VIEWER_DBS: &str = "agentMonitor.deleteViewerDbs";
pub const ROTATE_SECRETS: &str = "agentMonitor.rotateSecrets";
pub const ADD_PLATFORM: &str = "agentMonitor.addPlatform";
pub const LIST_PLATFORMS: &str = "agentMonitor.listPlatforms";
pub const REMOVE_PLATFORM: &str = "agentMonitor.removePlatform";
pub const LIST_METHODS: &str = "system.listMethods";
pub const SERVER_VERSION: &str = "server.version";

fn read_pair(r: &mut StructReader<'_>) -> Result<Pair, RpcError> {
    let project = r.req_str("project")?;
    let viewer = r.req_str("viewer")?;
    Ok(Pair::new(&project, &viewer)?)
}

fn pair_struct(pair: &Pair) -> StructBuilder {
    StructBuilder::new().str("project", pair.project()).str("viewer", pair.viewer())
}

fn read_generation(r: &mut StructReader<'_>) -> Result<i64, RpcError> {
    let g = r.req_int("generation")?;
    if g <= 0 {
        return Err(RpcError::invalid_params("generation must be positive"));
    }
    Ok(g)
}

fn read_state(r: &mut StructReader<'_>, key: &'static str) -> Result<ViewerState, RpcError> {
    r.req_str(key)?.parse().map_err(|e: crate::state::UnknownState| RpcError::invalid_params(e.to_string()))
}

/// Free-text members (paths, messages) are bounded so one caller cannot bloat the database.
fn bounded(key: &'static str, v: Option<String>, max: usize) -> Result<Option<String>, RpcError> {
    match v {
        Some(s) if s.len() > max => Err(RpcError::invalid_params(format!("member {key} is longer than {max} bytes"))),
        Some(s) if s.contains('\0') => Err(RpcError::invalid_params(format!("member {key} contains NUL"))),
        v => Ok(v),
    }
}

/// `agentMonitor.launchViewer(struct{project, viewer, viewer_uuid?, resultsfolder?, db_path?, user?})`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchViewer {
    pub pair: Pair,
    pub viewer_uuid: Option<String>,
    pub resultsfolder: Option<String>,
    pub db_path: Option<String>,
    pub user: Option<String>,
}

impl LaunchViewer {
    pub fn new(pair: Pair) -> LaunchViewer {
        LaunchViewer { pair, viewer_uuid: None, resultsfolder: None, db_path: None, user: None }
    }

    pub fn from_params(params: &[Value]) -> Result<LaunchViewer, RpcError> {
        let mut r = StructReader::single(params)?;
        let pair = read_pair(&mut r)?;
        let viewer_uuid = bounded("viewer_uuid", r.opt_str("viewer_uuid")?, 128)?;
        let resultsfolder = bounded("resultsfolder", r.opt_str("resultsfolder")?, 4096)?;
        let db_path = bounded("db_path", r.opt_str("db_path")?, 4096)?;
        let user = r.opt_str("user")?;
        if let Some(u) = &user {
            crate::names::validate_name("user", u)?;
        }
        r.finish()?;
        Ok(LaunchViewer { pair, viewer_uuid, resultsfolder, db_path, user })
    }

    pub fn to_params(&self) -> Vec<Value> {
        vec![pair_struct(&self.pair)
            .opt_str("viewer_uuid", self.viewer_uuid.clone())
            .opt_str("resultsfolder", self.resultsfolder.clone())
            .opt_str("db_path", self.db_path.clone())
            .opt_str("user", self.user.clone())
            .build()]
    }
}

/// Reply to `launchViewer`. `launched` is true only for the call that started the job;
/// `queued` is true when the pair was `stopping` and the launch will follow the stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchReply {
    pub state: ViewerState,
    pub generation: i64,
    pub launched: bool,
    pub queued: bool,
}

impl LaunchReply {
    fn members<S: StructSink>(&self, s: S) -> S {
        s.str("state", self.state.as_str())
            .int("generation", self.generation)
            .bool("launched", self.launched)
            .bool("queued", self.queued)
    }

    pub fn to_value(&self) -> Value {
        self.members(StructBuilder::new()).build()
    }

    /// The whole `methodResponse` (agent-monitor's hot path; reads back as [`Self::to_value`]).
    pub fn to_answer_xml(&self) -> String {
        self.members(StructAnswer::new()).finish()
    }

    pub fn from_value(v: &Value) -> Result<LaunchReply, RpcError> {
        let mut r = StructReader::single(std::slice::from_ref(v))?;
        Ok(LaunchReply {
            state: read_state(&mut r, "state")?,
            generation: r.req_int("generation")?,
            launched: r.opt_bool("launched")?.unwrap_or(false),
            queued: r.opt_bool("queued")?.unwrap_or(false),
        })
    }
}

/// `agentMonitor.isViewerAvailable(viewer, project)`: two positional strings, SWAMP's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsViewerAvailable {
    pub pair: Pair,
}

impl IsViewerAvailable {
    pub fn from_params(params: &[Value]) -> Result<IsViewerAvailable, RpcError> {
        let [viewer, project] = positional_strings::<2>(params)?;
        Ok(IsViewerAvailable { pair: Pair::new(&project, &viewer)? })
    }

    pub fn to_params(&self) -> Vec<Value> {
        vec![Value::String(self.pair.viewer().into()), Value::String(self.pair.project().into())]
    }
}

/// `{ready: 0/1, address, apikey, urluuid}` as SWAMP's callers expect, plus `state` and
/// `generation` (empty string and 0 when there is no live instance).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Availability {
    pub ready: bool,
    pub address: String,
    pub apikey: String,
    pub urluuid: String,
    pub state: String,
    pub generation: i64,
    /// The place in line of a launch waiting for room under a capacity limit (1 = next);
    /// 0 when not waiting. Apart from `launchViewer`'s `queued` (a click kept during a stop).
    pub waiting: i64,
}

/// [`Availability`] borrowing its strings: agent-monitor writes the answer straight from its
/// live map's entry, without copying the address, key and path out of it first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AvailabilityRef<'a> {
    pub ready: bool,
    pub address: &'a str,
    pub apikey: &'a str,
    pub urluuid: &'a str,
    pub state: &'a str,
    pub generation: i64,
    pub waiting: i64,
}

impl AvailabilityRef<'_> {
    fn members<S: StructSink>(&self, s: S) -> S {
        s.int("ready", i64::from(self.ready))
            .str("address", self.address)
            .str("apikey", self.apikey)
            .str("urluuid", self.urluuid)
            .str("state", self.state)
            .int("generation", self.generation)
            .int("waiting", self.waiting)
    }

    /// The whole `methodResponse`, exactly as [`Availability::to_answer_xml`] of the same fields.
    pub fn to_answer_xml(&self) -> String {
        self.members(StructAnswer::new()).finish()
    }
}

impl Availability {
    pub fn as_ref(&self) -> AvailabilityRef<'_> {
        AvailabilityRef {
            ready: self.ready,
            address: &self.address,
            apikey: &self.apikey,
            urluuid: &self.urluuid,
            state: &self.state,
            generation: self.generation,
            waiting: self.waiting,
        }
    }

    pub fn to_value(&self) -> Value {
        self.as_ref().members(StructBuilder::new()).build()
    }

    /// The whole `methodResponse` (agent-monitor's hot path; reads back as [`Self::to_value`]).
    pub fn to_answer_xml(&self) -> String {
        self.as_ref().to_answer_xml()
    }

    pub fn from_value(v: &Value) -> Result<Availability, RpcError> {
        let mut r = StructReader::single(std::slice::from_ref(v))?;
        Ok(Availability {
            ready: r.req_int("ready")? == 1,
            address: r.opt_str("address")?.unwrap_or_default(),
            apikey: r.opt_str("apikey")?.unwrap_or_default(),
            urluuid: r.opt_str("urluuid")?.unwrap_or_default(),
            state: r.opt_str("state")?.unwrap_or_default(),
            generation: r.opt_int("generation")?.unwrap_or(0),
            waiting: r.opt_int("waiting")?.unwrap_or(0),
        })
    }
}

/// `agentMonitor.setViewerState(struct{project, viewer, generation, state, ipaddress?, domain?, message?})`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetViewerState {
    pub pair: Pair,
    pub generation: i64,
    pub state: ViewerState,
    pub ipaddress: Option<String>,
    pub domain: Option<String>,
    pub message: Option<String>,
}

impl SetViewerState {
    pub fn from_params(params: &[Value]) -> Result<SetViewerState, RpcError> {
        let mut r = StructReader::single(params)?;
        let pair = read_pair(&mut r)?;
        let generation = read_generation(&mut r)?;
        let state = read_state(&mut r, "state")?;
        let ipaddress = bounded("ipaddress", r.opt_str("ipaddress")?, 256)?;
        let domain = bounded("domain", r.opt_str("domain")?, 256)?;
        let message = bounded("message", r.opt_str("message")?, 4096)?;
        // Keys SWAMP's vruntask sent that are now fixed by the job description.
        r.tolerate(&["vieweruuid", "apikey", "urluuid"]);
        r.finish()?;
        Ok(SetViewerState { pair, generation, state, ipaddress, domain, message })
    }

    pub fn to_params(&self) -> Vec<Value> {
        vec![pair_struct(&self.pair)
            .int("generation", self.generation)
            .str("state", self.state.as_str())
            .opt_str("ipaddress", self.ipaddress.clone())
            .opt_str("domain", self.domain.clone())
            .opt_str("message", self.message.clone())
            .build()]
    }
}

/// `{project, viewer, generation}`: the argument of `heartbeat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerationRef {
    pub pair: Pair,
    pub generation: i64,
}

impl GenerationRef {
    pub fn from_params(params: &[Value]) -> Result<GenerationRef, RpcError> {
        let mut r = StructReader::single(params)?;
        let pair = read_pair(&mut r)?;
        let generation = read_generation(&mut r)?;
        r.finish()?;
        Ok(GenerationRef { pair, generation })
    }

    pub fn to_params(&self) -> Vec<Value> {
        vec![pair_struct(&self.pair).int("generation", self.generation).build()]
    }
}

/// Reply to `heartbeat`: `continue` false tells the job to shut its viewer down.
pub fn heartbeat_reply(cont: bool) -> Value {
    StructBuilder::new().bool("continue", cont).build()
}

pub fn heartbeat_from_value(v: &Value) -> Result<bool, RpcError> {
    let mut r = StructReader::single(std::slice::from_ref(v))?;
    r.opt_bool("continue")?.ok_or_else(|| RpcError::invalid_params("missing member continue"))
}

/// `{project, viewer}`: the argument of `abortViewer` and `viewerStatus`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairRef {
    pub pair: Pair,
}

impl PairRef {
    pub fn from_params(params: &[Value]) -> Result<PairRef, RpcError> {
        let mut r = StructReader::single(params)?;
        let pair = read_pair(&mut r)?;
        r.finish()?;
        Ok(PairRef { pair })
    }

    pub fn to_params(&self) -> Vec<Value> {
        vec![pair_struct(&self.pair).build()]
    }
}

/// `agentMonitor.deleteViewerDbs(struct{project, viewer, confirm})`: `confirm` must repeat
/// the pair as `project.viewer`, so that a slip of the pair names nothing it did not mean.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteViewerDbs {
    pub pair: Pair,
}

impl DeleteViewerDbs {
    pub fn from_params(params: &[Value]) -> Result<DeleteViewerDbs, RpcError> {
        let mut r = StructReader::single(params)?;
        let pair = read_pair(&mut r)?;
        let confirm = r.req_str("confirm")?;
        r.finish()?;
        if confirm != pair.to_string() {
            return Err(RpcError::invalid_params(format!(
                "confirm must repeat the pair exactly ({pair}); nothing was deleted"
            )));
        }
        Ok(DeleteViewerDbs { pair })
    }

    pub fn to_params(&self) -> Vec<Value> {
        vec![pair_struct(&self.pair).str("confirm", self.pair.to_string()).build()]
    }
}

/// `agentMonitor.storeviewer(struct{project, viewer, generation, viewerdb, checksum})`:
/// `viewerdb` is base64, `checksum` the lowercase hex SHA-256 of the decoded bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreViewer {
    pub pair: Pair,
    pub generation: i64,
    pub viewerdb: Vec<u8>,
    pub checksum: String,
}

impl StoreViewer {
    pub fn from_params(params: &[Value]) -> Result<StoreViewer, RpcError> {
        let mut r = StructReader::single(params)?;
        let pair = read_pair(&mut r)?;
        let generation = read_generation(&mut r)?;
        let viewerdb = r.req_bytes("viewerdb")?;
        let checksum = r.req_str("checksum")?.to_ascii_lowercase();
        if checksum.len() != 64 || !checksum.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(RpcError::new(crate::FaultCode::BadChecksum, "checksum must be 64 hex digits (SHA-256)"));
        }
        r.finish()?;
        Ok(StoreViewer { pair, generation, viewerdb, checksum })
    }

    pub fn to_params(&self) -> Vec<Value> {
        vec![pair_struct(&self.pair)
            .int("generation", self.generation)
            .bytes("viewerdb", self.viewerdb.clone())
            .str("checksum", self.checksum.clone())
            .build()]
    }
}

/// Reply to `fetchJob({project, viewer, generation})`: `{version, job}`, `job` the JSON text
/// of the [`crate::job::JobSpec`]. The version travels outside the JSON too, so a client
/// can refuse a newer one without parsing it.
pub fn fetch_job_reply(version: u32, job_json: String) -> Value {
    StructBuilder::new().int("version", i64::from(version)).str("job", job_json).build()
}

pub fn fetch_job_from_value(v: &Value) -> Result<String, RpcError> {
    let mut r = StructReader::single(std::slice::from_ref(v))?;
    r.req_str("job")
}

/// Largest chunk `fetchViewerDb` answers with: a call's answer stays far below any body
/// limit, and a restore of a large archive is many short calls, not one long one.
pub const DB_CHUNK_MAX: i64 = 4 << 20;

/// `agentMonitor.fetchViewerDb(struct{project, viewer, generation, offset, length?})`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchViewerDb {
    pub pair: Pair,
    pub generation: i64,
    pub offset: i64,
    /// At most [`DB_CHUNK_MAX`] (the default).
    pub length: i64,
}

impl FetchViewerDb {
    pub fn from_params(params: &[Value]) -> Result<FetchViewerDb, RpcError> {
        let mut r = StructReader::single(params)?;
        let pair = read_pair(&mut r)?;
        let generation = read_generation(&mut r)?;
        let offset = r.req_int("offset")?;
        let length = r.opt_int("length")?.unwrap_or(DB_CHUNK_MAX);
        r.finish()?;
        if offset < 0 {
            return Err(RpcError::invalid_params("offset must not be negative"));
        }
        if !(1..=DB_CHUNK_MAX).contains(&length) {
            return Err(RpcError::invalid_params(format!("length must be 1 to {DB_CHUNK_MAX}")));
        }
        Ok(FetchViewerDb { pair, generation, offset, length })
    }

    pub fn to_params(&self) -> Vec<Value> {
        vec![pair_struct(&self.pair)
            .int("generation", self.generation)
            .int("offset", self.offset)
            .int("length", self.length)
            .build()]
    }
}

/// One chunk of the archive: `{data, size}` (`size` the whole archive's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbChunk {
    pub data: Vec<u8>,
    pub size: i64,
}

impl DbChunk {
    pub fn to_value(&self) -> Value {
        StructBuilder::new().bytes("data", self.data.clone()).int("size", self.size).build()
    }

    pub fn from_value(v: &Value) -> Result<DbChunk, RpcError> {
        let mut r = StructReader::single(std::slice::from_ref(v))?;
        Ok(DbChunk { data: r.req_bytes("data")?, size: r.req_int("size")? })
    }
}

/// One recorded transition.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub at: f64,
    pub from: String,
    pub to: String,
    pub reason: String,
}

/// The whole record of one instance, as `viewerStatus` and `listViewers` return it.
/// Times are Unix seconds (double).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct InstanceRecord {
    pub project: String,
    pub viewer: String,
    pub generation: i64,
    pub state: String,
    pub address: String,
    pub domain: String,
    pub urluuid: String,
    pub reason: String,
    pub created: f64,
    pub updated: f64,
    pub lease_expires: f64,
    pub relaunch_pending: bool,
    /// Whether the hypervisor knows this instance's domain: "yes", "no" or "unknown".
    pub domain_exists: String,
    /// The job system's id of the job (Slurm's job id), or empty.
    pub job_id: String,
    /// The node the job runs on, or empty (one host).
    pub node: String,
    /// Its place in line while it waits for room under a capacity limit (1 = next), else 0.
    pub waiting: i64,
    pub history: Vec<Transition>,
}

impl InstanceRecord {
    pub fn to_value(&self) -> Value {
        let history = self
            .history
            .iter()
            .map(|t| {
                StructBuilder::new()
                    .value("at", Value::Double(t.at))
                    .str("from", t.from.clone())
                    .str("to", t.to.clone())
                    .str("reason", t.reason.clone())
                    .build()
            })
            .collect();
        StructBuilder::new()
            .str("project", self.project.clone())
            .str("viewer", self.viewer.clone())
            .int("generation", self.generation)
            .str("state", self.state.clone())
            .str("address", self.address.clone())
            .str("domain", self.domain.clone())
            .str("urluuid", self.urluuid.clone())
            .str("reason", self.reason.clone())
            .value("created", Value::Double(self.created))
            .value("updated", Value::Double(self.updated))
            .value("lease_expires", Value::Double(self.lease_expires))
            .bool("relaunch_pending", self.relaunch_pending)
            .str("domain_exists", self.domain_exists.clone())
            .str("job_id", self.job_id.clone())
            .str("node", self.node.clone())
            .int("waiting", self.waiting)
            .value("history", Value::Array(history))
            .build()
    }

    pub fn from_value(v: &Value) -> Result<InstanceRecord, RpcError> {
        let Value::Struct(m) = v else {
            return Err(RpcError::invalid_params("instance record must be a struct"));
        };
        let s = |k: &str| match m.get(k) {
            Some(Value::String(s)) => s.clone(),
            _ => String::new(),
        };
        let f = |k: &str| match m.get(k) {
            Some(Value::Double(d)) => *d,
            Some(Value::Integer(i)) => f64::from(*i),
            _ => 0.0,
        };
        let history = match m.get("history") {
            Some(Value::Array(items)) => items.iter().filter_map(transition_from_value).collect(),
            _ => Vec::new(),
        };
        Ok(InstanceRecord {
            project: s("project"),
            viewer: s("viewer"),
            generation: match m.get("generation") {
                Some(Value::Integer(i)) => i64::from(*i),
                _ => 0,
            },
            state: s("state"),
            address: s("address"),
            domain: s("domain"),
            urluuid: s("urluuid"),
            reason: s("reason"),
            created: f("created"),
            updated: f("updated"),
            lease_expires: f("lease_expires"),
            relaunch_pending: matches!(m.get("relaunch_pending"), Some(Value::Boolean(true))),
            domain_exists: s("domain_exists"),
            job_id: s("job_id"),
            node: s("node"),
            waiting: match m.get("waiting") {
                Some(Value::Integer(i)) => i64::from(*i),
                _ => 0,
            },
            history,
        })
    }
}

fn transition_from_value(v: &Value) -> Option<Transition> {
    let Value::Struct(m) = v else { return None };
    let s = |k: &str| match m.get(k) {
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    };
    let at = match m.get("at") {
        Some(Value::Double(d)) => *d,
        _ => 0.0,
    };
    Some(Transition { at, from: s("from"), to: s("to"), reason: s("reason") })
}

/// `agentMonitor.claimPush(struct{project, viewer, generation, checksum, package?})`: asks
/// whether this result set (by SHA-256) still has to be uploaded to this generation's viewer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimPush {
    pub pair: Pair,
    pub generation: i64,
    pub checksum: String,
    pub package: Option<String>,
}

fn read_checksum(r: &mut StructReader<'_>) -> Result<String, RpcError> {
    let c = r.req_str("checksum")?.to_ascii_lowercase();
    if c.len() != 64 || !c.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(RpcError::invalid_params("checksum must be 64 hex digits (SHA-256)"));
    }
    Ok(c)
}

impl ClaimPush {
    pub fn from_params(params: &[Value]) -> Result<ClaimPush, RpcError> {
        let mut r = StructReader::single(params)?;
        let pair = read_pair(&mut r)?;
        let generation = read_generation(&mut r)?;
        let checksum = read_checksum(&mut r)?;
        let package = bounded("package", r.opt_str("package")?, 256)?;
        r.finish()?;
        Ok(ClaimPush { pair, generation, checksum, package })
    }

    pub fn to_params(&self) -> Vec<Value> {
        vec![pair_struct(&self.pair)
            .int("generation", self.generation)
            .str("checksum", self.checksum.clone())
            .opt_str("package", self.package.clone())
            .build()]
    }
}

/// Answer to `claimPush`: `Claimed` means "upload now, then call pushDone"; `Pushing` means
/// another caller is uploading it (ask again later); `Done` means it is already imported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushStatus {
    Claimed,
    Pushing,
    Done,
}

impl PushStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PushStatus::Claimed => "claimed",
            PushStatus::Pushing => "pushing",
            PushStatus::Done => "done",
        }
    }

    pub fn to_value(self) -> Value {
        StructBuilder::new().str("status", self.as_str()).build()
    }

    pub fn from_value(v: &Value) -> Result<PushStatus, RpcError> {
        let mut r = StructReader::single(std::slice::from_ref(v))?;
        match r.req_str("status")?.as_str() {
            "claimed" => Ok(PushStatus::Claimed),
            "pushing" => Ok(PushStatus::Pushing),
            "done" => Ok(PushStatus::Done),
            other => Err(RpcError::invalid_params(format!("unknown push status {other:?}"))),
        }
    }
}

/// `agentMonitor.pushDone(struct{project, viewer, generation, checksum, ok})`: ends a claim.
/// `ok` false releases it so that another caller may upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushDone {
    pub pair: Pair,
    pub generation: i64,
    pub checksum: String,
    pub ok: bool,
}

impl PushDone {
    pub fn from_params(params: &[Value]) -> Result<PushDone, RpcError> {
        let mut r = StructReader::single(params)?;
        let pair = read_pair(&mut r)?;
        let generation = read_generation(&mut r)?;
        let checksum = read_checksum(&mut r)?;
        let ok = r.opt_bool("ok")?.ok_or_else(|| RpcError::invalid_params("missing member ok"))?;
        r.finish()?;
        Ok(PushDone { pair, generation, checksum, ok })
    }

    pub fn to_params(&self) -> Vec<Value> {
        vec![pair_struct(&self.pair)
            .int("generation", self.generation)
            .str("checksum", self.checksum.clone())
            .bool("ok", self.ok)
            .build()]
    }
}

/// One vrun domain on the hypervisor, as `hostInfo` lists the foreign ones.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DomainEntry {
    pub name: String,
    /// The id of the agent-monitor that owns it; empty for a domain made before ids existed.
    pub owner: String,
    pub project: String,
    pub viewer: String,
    pub generation: i64,
    pub running: bool,
}

/// `hostInfo` (admin): who this agent-monitor is and what else runs on its hypervisor.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostInfo {
    /// The id created with the state directory; in every domain name this daemon makes.
    pub monitor_id: String,
    /// Whether the hypervisor answered the inventory.
    pub hypervisor_reachable: bool,
    /// vrun domains this daemon owns.
    pub own_domains: i64,
    /// vrun domains of other agent-monitors (or of no known owner): listed, never touched.
    pub foreign_domains: Vec<DomainEntry>,
    /// Hypervisor nodes whose DomainMonitor reported lately, with how many of this
    /// agent-monitor's domains each runs (empty on one host).
    pub nodes: Vec<(String, i64)>,
}

impl HostInfo {
    pub fn to_value(&self) -> Value {
        let foreign = self
            .foreign_domains
            .iter()
            .map(|d| {
                StructBuilder::new()
                    .str("name", d.name.clone())
                    .str("owner", d.owner.clone())
                    .str("project", d.project.clone())
                    .str("viewer", d.viewer.clone())
                    .int("generation", d.generation)
                    .bool("running", d.running)
                    .build()
            })
            .collect();
        StructBuilder::new()
            .str("monitor_id", self.monitor_id.clone())
            .bool("hypervisor_reachable", self.hypervisor_reachable)
            .int("own_domains", self.own_domains)
            .value("foreign_domains", Value::Array(foreign))
            .value(
                "nodes",
                Value::Array(
                    self.nodes
                        .iter()
                        .map(|(n, d)| StructBuilder::new().str("node", n.clone()).int("domains", *d).build())
                        .collect(),
                ),
            )
            .build()
    }

    pub fn from_value(v: &Value) -> Result<HostInfo, RpcError> {
        let Value::Struct(m) = v else {
            return Err(RpcError::invalid_params("hostInfo must be a struct"));
        };
        fn s(m: &std::collections::BTreeMap<String, Value>, k: &str) -> String {
            m.get(k).and_then(crate::value::lenient_str).unwrap_or_default()
        }
        fn i(m: &std::collections::BTreeMap<String, Value>, k: &str) -> i64 {
            m.get(k).and_then(crate::value::lenient_int).unwrap_or(0)
        }
        fn b(m: &std::collections::BTreeMap<String, Value>, k: &str) -> bool {
            matches!(m.get(k), Some(Value::Boolean(true)))
        }
        let foreign = match m.get("foreign_domains") {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|v| match v {
                    Value::Struct(d) => Some(DomainEntry {
                        name: s(d, "name"),
                        owner: s(d, "owner"),
                        project: s(d, "project"),
                        viewer: s(d, "viewer"),
                        generation: i(d, "generation"),
                        running: b(d, "running"),
                    }),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        let nodes = match m.get("nodes") {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|v| match v {
                    Value::Struct(n) => Some((s(n, "node"), i(n, "domains"))),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        Ok(HostInfo {
            monitor_id: s(m, "monitor_id"),
            hypervisor_reachable: b(m, "hypervisor_reachable"),
            own_domains: i(m, "own_domains"),
            foreign_domains: foreign,
            nodes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ViewerState;

    /// The hot answers are written by hand (`to_answer_xml`); they must read back as the
    /// values the generic path would send.
    #[test]
    fn hot_answers_read_back_as_their_values() {
        let a = Availability {
            ready: true,
            address: "127.0.0.1:40000".into(),
            apikey: "ab".repeat(32),
            urluuid: "proxy-<&>".into(),
            state: "ready".into(),
            generation: 1 << 40, // clamped the same way on both paths
            waiting: 3,
        };
        let l = LaunchReply { state: ViewerState::Stopping, generation: 7, launched: false, queued: true };
        for (xml, value) in [(a.to_answer_xml(), a.to_value()), (l.to_answer_xml(), l.to_value())] {
            assert_eq!(dxr::MethodResponse::from_xml(&xml).unwrap().value, value, "{xml}");
        }
        assert_eq!(
            Availability::from_value(&dxr::MethodResponse::from_xml(&a.to_answer_xml()).unwrap().value)
                .unwrap()
                .urluuid,
            "proxy-<&>"
        );
    }
}
