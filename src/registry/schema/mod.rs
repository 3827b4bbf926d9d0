//! placeholder until the schema module lands
use serde_json::Value;
#[derive(Clone, Debug, PartialEq)]
pub struct SchemaError { pub field: String, pub reason: &'static str, pub message: String }
pub fn prune(_s: &Value, _o: &mut Value) -> Vec<String> { vec![] }
pub fn apply_defaults(_s: &Value, _o: &mut Value) {}
pub fn validate(_s: &Value, _o: &Value) -> Vec<SchemaError> { vec![] }
