//! placeholder until the patch module lands
use serde_json::Value;
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType { Json, Merge, StrategicMerge, Apply }
impl PatchType { pub fn from_content_type(_c: &str) -> Option<PatchType> { None } }
#[derive(Debug)] pub struct Conflict { pub manager: String, pub field: String }
#[derive(Debug, thiserror::Error)]
pub enum PatchError { #[error("x")] Invalid(String), #[error("t")] TestFailed { path: String }, #[error("c")] Conflict(Vec<Conflict>) }
pub fn json_patch(d: &Value, _p: &Value) -> Result<Value, PatchError> { Ok(d.clone()) }
pub fn merge_patch(d: &Value, _p: &Value) -> Value { d.clone() }
pub fn strategic_merge_patch(_g: &str, _k: &str, d: &Value, _p: &Value) -> Result<Value, PatchError> { Ok(d.clone()) }
#[allow(clippy::too_many_arguments)]
pub fn apply(_g: &str, _k: &str, _a: &str, _l: Option<&Value>, a: &Value, _m: &str, _f: bool, _n: &str) -> Result<Value, PatchError> { Ok(a.clone()) }
#[allow(clippy::too_many_arguments)]
pub fn track_update(_g: &str, _k: &str, _a: &str, _o: Option<&Value>, _n: &mut Value, _m: &str, _s: &str, _t: &str) {}
