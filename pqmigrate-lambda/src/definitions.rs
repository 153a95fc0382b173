//! The Step Functions state machines and the SAM template, generated from one place so the
//! shipped files (`pqmigrate-lambda/deploy/`) never drift from the handlers' contract.

use serde_json::{Value, json};

use crate::events::RETRYABLE_ERROR;

/// Settings of the generated definitions.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// ARN of the migrate function (a `${...}` substitution in the SAM template).
    pub migrate_function: String,
    /// ARN of the scan function.
    pub scan_function: String,
    /// Child executions of the Distributed Map at once.
    pub max_concurrency: u32,
    /// Share of objects that may fail before the map run fails.
    pub tolerated_failure_percentage: u32,
    /// First retry delay of retryable errors, in seconds.
    pub retry_interval_seconds: u32,
    /// Attempts of a retryable error.
    pub retry_max_attempts: u32,
    /// Growth of the delay.
    pub retry_backoff_rate: f64,
    /// Largest delay, in seconds.
    pub retry_max_delay_seconds: u32,
    /// Limit of one invocation, in seconds (Lambda allows 900).
    pub task_timeout_seconds: u32,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            migrate_function: "arn:aws:lambda:eu-west-1:123456789012:function:PqmMigrate".into(),
            scan_function: "arn:aws:lambda:eu-west-1:123456789012:function:PqmScan".into(),
            max_concurrency: 100,
            tolerated_failure_percentage: 5,
            retry_interval_seconds: 2,
            retry_max_attempts: 8,
            retry_backoff_rate: 2.0,
            retry_max_delay_seconds: 120,
            task_timeout_seconds: 900,
        }
    }
}

/// How much shorter the function's timeout is than the Task's.
pub const FUNCTION_TIMEOUT_MARGIN_SECONDS: u32 = 60;

fn retry(options: &Options) -> Value {
    json!([
        {
            // Not States.Timeout: the handler answers PqmRetryable before its own deadline, so a
            // Task that still times out is stuck, and running it again would not help.
            "ErrorEquals": [RETRYABLE_ERROR, "Lambda.TooManyRequestsException", "Lambda.ServiceException",
                            "Lambda.AWSLambdaException", "Lambda.SdkClientException",
                            "Lambda.ClientExecutionTimeoutException"],
            "IntervalSeconds": options.retry_interval_seconds,
            "MaxAttempts": options.retry_max_attempts,
            "BackoffRate": options.retry_backoff_rate,
            "MaxDelaySeconds": options.retry_max_delay_seconds,
            "JitterStrategy": "FULL"
        }
    ])
}

/// The per-object states of the seed's state machine: a Choice on `$.state`, the migrate Task
/// looping back to it, retries with backoff and full jitter, and every other error caught.
fn object_states(options: &Options) -> Value {
    json!({
        "UpgradeSchema?": {
            "Type": "Choice",
            "Choices": [
                { "Variable": "$.state", "StringEquals": "Done", "Next": "FinalState" },
                { "Variable": "$.state", "StringEquals": "Error", "Next": "ErrorState" },
                { "Variable": "$.state", "StringEquals": "MissingMigrationStep", "Next": "MissingMigrationStepState" }
            ],
            "Default": "SchemaMigration"
        },
        "SchemaMigration": {
            "Type": "Task",
            "Resource": options.migrate_function,
            "TimeoutSeconds": options.task_timeout_seconds,
            "Retry": retry(options),
            "Catch": [ { "ErrorEquals": ["States.ALL"], "Next": "ErrorState", "ResultPath": "$.error" } ],
            "Next": "UpgradeSchema?"
        },
        "ErrorState": { "Type": "Fail", "Error": "MigrationError", "Cause": "The object could not be migrated; see errorCause" },
        "MissingMigrationStepState": { "Type": "Fail", "Error": "MissingMigrationStep", "Cause": "No step leads on from the object's version" },
        "FinalState": { "Type": "Succeed" }
    })
}

/// The per-object state machine (one execution per object, as in the seed).
pub fn object_state_machine(options: &Options) -> Value {
    json!({
        "Comment": "pqmigrate: migrate one Parquet object to the desired schema version",
        "StartAt": "UpgradeSchema?",
        "States": object_states(options)
    })
}

/// The parent state machine: the scan Task writes a JSON-lines manifest; a Distributed Map
/// runs the per-object loop over it with bounded concurrency and tolerated failures, and writes
/// its results to S3.
pub fn parent_state_machine(options: &Options) -> Value {
    json!({
        "Comment": "pqmigrate: scan a data set, then migrate every object that needs it",
        "StartAt": "Scan",
        "States": {
            "Scan": {
                "Type": "Task",
                "Resource": options.scan_function,
                "TimeoutSeconds": options.task_timeout_seconds,
                "Retry": retry(options),
                "Next": "MigrateObjects"
            },
            "MigrateObjects": {
                "Type": "Map",
                "ItemReader": {
                    "Resource": "arn:aws:states:::s3:getObject",
                    "ReaderConfig": { "InputType": "JSONL" },
                    "Parameters": { "Bucket.$": "$.manifestBucket", "Key.$": "$.manifestKey" }
                },
                "ItemProcessor": {
                    "ProcessorConfig": { "Mode": "DISTRIBUTED", "ExecutionType": "STANDARD" },
                    "StartAt": "UpgradeSchema?",
                    "States": object_states(options)
                },
                "MaxConcurrency": options.max_concurrency,
                "ToleratedFailurePercentage": options.tolerated_failure_percentage,
                "ResultWriter": {
                    "Resource": "arn:aws:states:::s3:putObject",
                    "Parameters": { "Bucket.$": "$.manifestBucket", "Prefix": "_pqmigrate/map-results" }
                },
                "End": true
            }
        }
    })
}

/// The SAM template: both functions (`provided.al2023`), both state machines and
/// least-privilege IAM (the data bucket's objects and tags; writes of manifests and map results
/// only under `_pqmigrate/`).
pub fn sam_template(options: &Options) -> Value {
    let substituted = Options {
        migrate_function: "${MigrateFunctionArn}".into(),
        scan_function: "${ScanFunctionArn}".into(),
        ..options.clone()
    };
    let bucket_arn = json!({ "Fn::Sub": "arn:aws:s3:::${DataBucket}" });
    let objects_arn = json!({ "Fn::Sub": "arn:aws:s3:::${DataBucket}/*" });
    let internal_arn = json!({ "Fn::Sub": "arn:aws:s3:::${DataBucket}/_pqmigrate/*" });
    let object_actions = json!([
        "s3:GetObject",
        "s3:GetObjectVersion",
        "s3:GetObjectTagging",
        "s3:GetObjectVersionTagging",
        "s3:PutObject",
        "s3:PutObjectTagging",
        "s3:AbortMultipartUpload",
        "s3:ListMultipartUploadParts"
    ]);
    let function = |handler: &str, description: &str, policies: Value| {
        json!({
            "Type": "AWS::Serverless::Function",
            "Properties": {
                "Description": description,
                // SAM resolves CodeUri against the template's own folder
                // (pqmigrate-lambda/deploy/), so this is the workspace's target/lambda/<handler>/,
                // where the README's build lines put each bootstrap.
                "CodeUri": format!("../../target/lambda/{handler}/"),
                "Handler": "bootstrap",
                "Runtime": "provided.al2023",
                "Architectures": [{ "Ref": "Architecture" }],
                "MemorySize": { "Ref": "MemorySize" },
                // Below the Task's TimeoutSeconds: the invocation's deadline comes first, and
                // the handler gives up cleanly before it.
                "Timeout": options.task_timeout_seconds.saturating_sub(FUNCTION_TIMEOUT_MARGIN_SECONDS),
                "Environment": { "Variables": { "PQM_LOG": "info" } },
                "Policies": policies
            }
        })
    };
    let state_machine = |definition: Value, policies: Value| {
        json!({
            "Type": "AWS::Serverless::StateMachine",
            "Properties": {
                "Definition": definition,
                "DefinitionSubstitutions": {
                    "MigrateFunctionArn": { "Fn::GetAtt": ["MigrateFunction", "Arn"] },
                    "ScanFunctionArn": { "Fn::GetAtt": ["ScanFunction", "Arn"] }
                },
                "Policies": policies
            }
        })
    };
    json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Transform": "AWS::Serverless-2016-10-31",
        "Description": "pqmigrate: controlled, versioned schema migration of a Parquet data set in S3",
        "Parameters": {
            "DataBucket": { "Type": "String", "Description": "Bucket holding the data set (versioning on is recommended)" },
            "Architecture": { "Type": "String", "Default": "x86_64", "AllowedValues": ["x86_64", "arm64"] },
            "MemorySize": { "Type": "Number", "Default": 1024, "MinValue": 256, "MaxValue": 10240 }
        },
        "Resources": {
            "MigrateFunction": function("migrate", "pqmigrate: migrate one object", json!([
                { "Statement": [ { "Effect": "Allow", "Action": object_actions, "Resource": objects_arn } ] }
            ])),
            "ScanFunction": function("scan", "pqmigrate: list a data set and write the manifest", json!([
                { "Statement": [
                    { "Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": bucket_arn },
                    { "Effect": "Allow", "Action": ["s3:GetObject", "s3:GetObjectTagging"], "Resource": objects_arn },
                    { "Effect": "Allow", "Action": ["s3:PutObject"], "Resource": internal_arn }
                ] }
            ])),
            "ObjectStateMachine": state_machine(object_state_machine(&substituted), json!([
                { "LambdaInvokePolicy": { "FunctionName": { "Ref": "MigrateFunction" } } }
            ])),
            "ParentStateMachine": state_machine(parent_state_machine(&substituted), json!([
                { "LambdaInvokePolicy": { "FunctionName": { "Ref": "MigrateFunction" } } },
                { "LambdaInvokePolicy": { "FunctionName": { "Ref": "ScanFunction" } } },
                { "Statement": [
                    { "Effect": "Allow", "Action": ["s3:GetObject"], "Resource": internal_arn },
                    { "Effect": "Allow", "Action": ["s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"], "Resource": internal_arn },
                    { "Effect": "Allow", "Action": ["states:StartExecution", "states:DescribeExecution", "states:StopExecution"], "Resource": "*" }
                ] }
            ]))
        },
        "Outputs": {
            "ParentStateMachineArn": { "Value": { "Ref": "ParentStateMachine" } },
            "ObjectStateMachineArn": { "Value": { "Ref": "ObjectStateMachine" } },
            "MigrateFunctionArn": { "Value": { "Fn::GetAtt": ["MigrateFunction", "Arn"] } }
        }
    })
}

/// The files shipped in `pqmigrate-lambda/deploy/`, as `(name, content)`.
pub fn shipped_files() -> Vec<(&'static str, String)> {
    let options = Options::default();
    let pretty = |v: Value| serde_json::to_string_pretty(&v).expect("serializable") + "\n";
    vec![
        ("object.asl.json", pretty(object_state_machine(&options))),
        ("parent.asl.json", pretty(parent_state_machine(&options))),
        ("template.json", pretty(sam_template(&options))),
    ]
}
