//! `batch` group: jobs and cron jobs.

use serde_json::{json, Value};

use super::format::{
    age, age_col, arr, bool_ptr, col, deleting, format_label_selector, get, get_bool, get_i64,
    get_str, human_nanos, int, layout_containers, name, name_col, opt_str, parse_time, since_at,
    CONTAINERS_DESC, IMAGES_DESC,
};
use super::narrow::Reads;
use super::{CellsFn, Column, ColumnsFn, Printer};

pub(super) fn printer(resource: &str) -> Option<Printer> {
    let (columns, cells): (ColumnsFn, CellsFn) = match resource {
        "jobs" => (job_columns, job_cells),
        "cronjobs" => (cronjob_columns, cronjob_cells),
        _ => return None,
    };
    Some(Printer { columns, cells })
}

/// What [`job_cells`] reads of a job.
pub(super) const JOB_READS: Reads = &[
    "metadata.name",
    "metadata.creationTimestamp",
    "metadata.deletionTimestamp",
    "spec.completions",
    "spec.parallelism",
    "spec.selector",
    "spec.template.spec.containers.name",
    "spec.template.spec.containers.image",
    "status.conditions.type",
    "status.conditions.status",
    "status.succeeded",
    "status.startTime",
    "status.completionTime",
];

fn job_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("Status", "string", 0, "Status of the job."),
        col(
            "Completions",
            "string",
            0,
            "The number of pods which reached phase Succeeded.",
        ),
        col(
            "Duration",
            "string",
            0,
            "Time required to complete the job.",
        ),
        age_col(),
        col("Containers", "string", 1, CONTAINERS_DESC),
        col("Images", "string", 1, IMAGES_DESC),
        col(
            "Selector",
            "string",
            1,
            "A label query over pods that should match the pod count.",
        ),
    ]
}

/// `hasJobCondition`: the first condition of the type decides.
fn has_condition(obj: &Value, type_: &str) -> bool {
    arr(obj, &["status", "conditions"])
        .iter()
        .find(|c| get_str(c, &["type"]) == type_)
        .is_some_and(|c| get_str(c, &["status"]) == "True")
}

fn job_status(obj: &Value) -> &'static str {
    if has_condition(obj, "Complete") {
        "Complete"
    } else if has_condition(obj, "Failed") {
        "Failed"
    } else if deleting(obj) {
        "Terminating"
    } else if has_condition(obj, "Suspended") {
        "Suspended"
    } else if has_condition(obj, "FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    }
}

fn job_completions(obj: &Value) -> String {
    let succeeded = int(obj, &["status", "succeeded"]);
    match get_i64(obj, &["spec", "completions"]) {
        Some(c) => format!("{succeeded}/{c}"),
        None => {
            let parallelism = int(obj, &["spec", "parallelism"]);
            if parallelism > 1 {
                format!("{succeeded}/1 of {parallelism}")
            } else {
                format!("{succeeded}/1")
            }
        }
    }
}

fn job_duration(obj: &Value, now: jiff::Timestamp) -> String {
    let Some(start) = parse_time(get_str(obj, &["status", "startTime"])) else {
        return String::new();
    };
    let end = parse_time(get_str(obj, &["status", "completionTime"])).unwrap_or(now);
    human_nanos(end.as_nanosecond() - start.as_nanosecond())
}

fn job_cells(obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let (names, images) = layout_containers(arr(obj, &["spec", "template", "spec", "containers"]));
    vec![
        name(obj),
        json!(job_status(obj)),
        json!(job_completions(obj)),
        json!(job_duration(obj, now)),
        age(obj, now),
        names,
        images,
        json!(format_label_selector(get(obj, &["spec", "selector"]))),
    ]
}

fn cronjob_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("Schedule", "string", 0, "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron."),
        col("Timezone", "string", 0, "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones."),
        col("Suspend", "boolean", 0, "This flag tells the controller to suspend subsequent executions, it does not apply to already started executions. Defaults to false."),
        col("Active", "integer", 0, "A list of pointers to currently running jobs."),
        col("Last Schedule", "string", 0, "Information when was the last time the job was successfully scheduled."),
        age_col(),
        col("Containers", "string", 1, CONTAINERS_DESC),
        col("Images", "string", 1, IMAGES_DESC),
        col("Selector", "string", 1, "A label query over pods that should match the pod count."),
    ]
}

fn cronjob_cells(obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let last_schedule = match get(obj, &["status", "lastScheduleTime"]) {
        None | Some(Value::Null) => "<none>".to_string(),
        Some(_) => since_at(obj, &["status", "lastScheduleTime"], now),
    };
    let job_spec = get(obj, &["spec", "jobTemplate", "spec"]).unwrap_or(&Value::Null);
    let (names, images) = layout_containers(arr(job_spec, &["template", "spec", "containers"]));
    vec![
        name(obj),
        json!(get_str(obj, &["spec", "schedule"])),
        json!(opt_str(obj, &["spec", "timeZone"]).unwrap_or("<none>")),
        json!(bool_ptr(get_bool(obj, &["spec", "suspend"]))),
        json!(arr(obj, &["status", "active"]).len()),
        json!(last_schedule),
        age(obj, now),
        names,
        images,
        json!(format_label_selector(get(job_spec, &["selector"]))),
    ]
}
