//! Query and path parameters of the generated operations, with the
//! descriptions upstream gives them (shortened).

/// One parameter; `location` is "path" or "query".
pub(super) struct Param {
    pub name: &'static str,
    pub location: &'static str,
    pub ty: &'static str,
    pub description: &'static str,
}

const fn query(name: &'static str, ty: &'static str, description: &'static str) -> Param {
    Param {
        name,
        location: "query",
        ty,
        description,
    }
}

pub(super) const NAME: Param = Param {
    name: "name",
    location: "path",
    ty: "string",
    description: "name of the resource",
};
pub(super) const NAMESPACE: Param = Param {
    name: "namespace",
    location: "path",
    ty: "string",
    description: "object name and auth scope, such as for teams and projects",
};
pub(super) const PRETTY: Param = query("pretty", "string", "If 'true', then the output is pretty printed. Defaults to 'false' unless the user-agent indicates a browser or command-line HTTP tool (curl and wget).");

pub(super) const DRY_RUN: Param = query("dryRun", "string", "When present, indicates that modifications should not be persisted. Valid values are: - All: all dry run stages will be processed");
pub(super) const FIELD_MANAGER: Param = query(
    "fieldManager",
    "string",
    "fieldManager is a name associated with the actor or entity that is making these changes.",
);
pub(super) const FIELD_VALIDATION: Param = query("fieldValidation", "string", "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore - Warn - Strict");
pub(super) const FORCE: Param = query("force", "boolean", "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people. Force flag must be unset for non-apply patch requests.");
pub(super) const GRACE: Param = query("gracePeriodSeconds", "integer", "The duration in seconds before the object should be deleted. Value must be non-negative integer. The value zero indicates delete immediately.");
pub(super) const ORPHAN: Param = query("orphanDependents", "boolean", "Deprecated: please use the PropagationPolicy, this field will be deprecated in 1.7. Should the dependent objects be orphaned.");
pub(super) const PROPAGATION: Param = query("propagationPolicy", "string", "Whether and how garbage collection will be performed. Acceptable values are: 'Orphan', 'Background', 'Foreground'.");
pub(super) const BOOKMARKS: Param = query(
    "allowWatchBookmarks",
    "boolean",
    "allowWatchBookmarks requests watch events with type \"BOOKMARK\".",
);
pub(super) const CONTINUE: Param = query(
    "continue",
    "string",
    "The continue option should be set when retrieving more results from the server.",
);
pub(super) const FIELD_SELECTOR: Param = query(
    "fieldSelector",
    "string",
    "A selector to restrict the list of returned objects by their fields. Defaults to everything.",
);
pub(super) const LABEL_SELECTOR: Param = query(
    "labelSelector",
    "string",
    "A selector to restrict the list of returned objects by their labels. Defaults to everything.",
);
pub(super) const LIMIT: Param = query(
    "limit",
    "integer",
    "limit is a maximum number of responses to return for a list call.",
);
pub(super) const RESOURCE_VERSION: Param = query(
    "resourceVersion",
    "string",
    "resourceVersion sets a constraint on what resource versions a request may be served from.",
);
pub(super) const RV_MATCH: Param = query(
    "resourceVersionMatch",
    "string",
    "resourceVersionMatch determines how resourceVersion is applied to list calls.",
);
pub(super) const INITIAL_EVENTS: Param = query(
    "sendInitialEvents",
    "boolean",
    "`sendInitialEvents=true` may be set together with `watch=true`.",
);
pub(super) const TIMEOUT: Param = query(
    "timeoutSeconds",
    "integer",
    "Timeout for the list/watch call.",
);
pub(super) const WATCH: Param = query("watch", "boolean", "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications.");
pub(super) const CONTAINER: Param = query(
    "container",
    "string",
    "The container for which to stream logs or run a command.",
);
pub(super) const FOLLOW: Param = query("follow", "boolean", "Follow the log stream of the pod.");
pub(super) const COMMAND: Param = query(
    "command",
    "string",
    "Command is the remote command to execute. argv array.",
);

pub(super) const LIST_PARAMS: &[&Param] = &[
    &BOOKMARKS,
    &CONTINUE,
    &FIELD_SELECTOR,
    &LABEL_SELECTOR,
    &LIMIT,
    &RESOURCE_VERSION,
    &RV_MATCH,
    &INITIAL_EVENTS,
    &TIMEOUT,
    &WATCH,
];
pub(super) const WRITE_PARAMS: &[&Param] = &[&DRY_RUN, &FIELD_MANAGER, &FIELD_VALIDATION];
pub(super) const PATCH_PARAMS: &[&Param] = &[&DRY_RUN, &FIELD_MANAGER, &FIELD_VALIDATION, &FORCE];
pub(super) const DELETE_PARAMS: &[&Param] = &[&DRY_RUN, &GRACE, &ORPHAN, &PROPAGATION];
pub(super) const DELETE_COLLECTION_PARAMS: &[&Param] = &[
    &CONTINUE,
    &DRY_RUN,
    &FIELD_SELECTOR,
    &GRACE,
    &LABEL_SELECTOR,
    &LIMIT,
    &ORPHAN,
    &PROPAGATION,
    &RESOURCE_VERSION,
    &RV_MATCH,
    &INITIAL_EVENTS,
    &TIMEOUT,
];
pub(super) const LOG_PARAMS: &[&Param] = &[&CONTAINER, &FOLLOW];
pub(super) const CONNECT_PARAMS: &[&Param] = &[&COMMAND, &CONTAINER];
