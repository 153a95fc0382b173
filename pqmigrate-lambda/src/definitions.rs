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
    /// Execution type of the Distributed Map's child workflows: `STANDARD`, or `EXPRESS`
    /// (billed by duration, not by transition: cheaper per object; at most 5 minutes each).
    pub map_execution_type: String,
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
            map_execution_type: "STANDARD".into(),
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

/// The per-object states of the state machine: a Choice on `$.state`, the migrate Task
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
            "Catch": [ { "ErrorEquals": ["States.ALL"], "Next": "InvocationFailedState", "ResultPath": "$.error" } ],
            "Next": "UpgradeSchema?"
        },
        // Each Fail names the object's own cause, so the Map's result files say why.
        "ErrorState": { "Type": "Fail", "Error": "MigrationError", "CausePath": "$.errorCause" },
        "MissingMigrationStepState": { "Type": "Fail", "Error": "MissingMigrationStep", "CausePath": "$.errorCause" },
        "InvocationFailedState": { "Type": "Fail", "ErrorPath": "$.error.Error", "CausePath": "$.error.Cause" },
        "FinalState": { "Type": "Succeed" }
    })
}

/// The per-object state machine (one execution per object).
pub fn object_state_machine(options: &Options) -> Value {
    json!({
        "Comment": "pqmigrate: migrate one Parquet object to the desired schema version",
        "StartAt": "UpgradeSchema?",
        "States": object_states(options)
    })
}

/// The parent state machine: the scan Task begins a run and writes a JSON-lines manifest (the
/// objects it leaves out recorded in the run); a Distributed Map runs the per-object loop over
/// it with the concurrency and tolerated failures of the execution's input, and writes its
/// results to S3; a last Task closes the run (its summary from every object's record, the
/// lease released); and a Choice fails the execution, naming the objects, when any needs
/// attention (unless the input sets `failOnAttention` to false).
pub fn parent_state_machine(options: &Options) -> Value {
    json!({
        "Comment": "pqmigrate: scan a data set, migrate every object that needs it, and close the run",
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
                    "ProcessorConfig": { "Mode": "DISTRIBUTED", "ExecutionType": options.map_execution_type },
                    "StartAt": "UpgradeSchema?",
                    "States": object_states(options)
                },
                "MaxConcurrencyPath": "$.maxConcurrency",
                "ToleratedFailurePercentagePath": "$.toleratedFailurePercentage",
                "ResultWriter": {
                    "Resource": "arn:aws:states:::s3:putObject",
                    "Parameters": { "Bucket.$": "$.manifestBucket", "Prefix": "_pqmigrate/map-results" }
                },
                "ResultPath": "$.map",
                // More failures than tolerated still close the run, which then reports them.
                "Catch": [ { "ErrorEquals": ["States.ALL"], "ResultPath": "$.mapError", "Next": "CloseRun" } ],
                "Next": "CloseRun"
            },
            "CloseRun": {
                "Type": "Task",
                "Resource": options.scan_function,
                "Parameters": {
                    "closeRun.$": "$.runId",
                    "bucket.$": "$.manifestBucket",
                    "schema.$": "$.schema",
                    "expected.$": "$.expected",
                    "failOnAttention.$": "$.failOnAttention"
                },
                "TimeoutSeconds": options.task_timeout_seconds,
                "Retry": retry(options),
                "Next": "NeedsAttention?"
            },
            "NeedsAttention?": {
                "Type": "Choice",
                "Choices": [
                    {
                        "And": [
                            { "Variable": "$.failOnAttention", "BooleanEquals": true },
                            { "Variable": "$.needsAttention", "NumericGreaterThan": 0 }
                        ],
                        "Next": "ObjectsNeedAttention"
                    }
                ],
                "Default": "Migrated"
            },
            "ObjectsNeedAttention": { "Type": "Fail", "Error": "ObjectsNeedAttention", "CausePath": "$.cause" },
            "Migrated": { "Type": "Succeed" }
        }
    })
}

/// The actions each function's code calls, for the least-privilege policies (and the README's
/// list): on the data set's objects, on the internal prefix `_pqmigrate/`, and on the bucket.
pub const MIGRATE_OBJECT_ACTIONS: [&str; 8] = [
    "s3:GetObject",
    "s3:GetObjectVersion",
    "s3:GetObjectTagging",
    "s3:GetObjectVersionTagging",
    "s3:PutObject",
    "s3:PutObjectTagging",
    "s3:PutObjectVersionTagging",
    "s3:AbortMultipartUpload",
];
/// What the scan function does to the data set's objects (reads footers and tags).
pub const SCAN_OBJECT_ACTIONS: [&str; 2] = ["s3:GetObject", "s3:GetObjectTagging"];
/// What both functions do under `_pqmigrate/` (manifests, journal, lease, the probe's scratch
/// key) beyond reading.
pub const INTERNAL_ACTIONS: [&str; 4] = [
    "s3:PutObject",
    "s3:PutObjectTagging",
    "s3:DeleteObject",
    "s3:AbortMultipartUpload",
];
/// What both functions ask of the bucket itself.
pub const SCAN_BUCKET_ACTIONS: [&str; 2] = ["s3:ListBucket", "s3:GetBucketVersioning"];
/// What the migrate function asks of the bucket itself: the probe's versioning check, and the
/// listing of the migration files (`Migrations`) that tells the stock bootstrap whether its
/// cached copy is current.
pub const MIGRATE_BUCKET_ACTIONS: [&str; 2] = ["s3:GetBucketVersioning", "s3:ListBucket"];
/// With an SSE-KMS bucket, on its key.
pub const KMS_ACTIONS: [&str; 2] = ["kms:Decrypt", "kms:GenerateDataKey"];

/// The SAM template: both functions (`provided.al2023`), both state machines, and IAM with
/// exactly the actions the code calls. Parameters: the bucket, the migration files, the architecture, memory, the
/// migrate function's reserved concurrency (100 by default), a KMS key for SSE-KMS buckets,
/// and the execution type of the Map's child workflows.
pub fn sam_template(options: &Options) -> Value {
    let substituted = Options {
        migrate_function: "${MigrateFunctionArn}".into(),
        scan_function: "${ScanFunctionArn}".into(),
        map_execution_type: "${MapExecutionType}".into(),
        ..options.clone()
    };
    let bucket_arn = json!({ "Fn::Sub": "arn:${AWS::Partition}:s3:::${DataBucket}" });
    let objects_arn = json!({ "Fn::Sub": "arn:${AWS::Partition}:s3:::${DataBucket}/*" });
    let internal_arn = json!({ "Fn::Sub": "arn:${AWS::Partition}:s3:::${DataBucket}/_pqmigrate/*" });
    let kms = json!({
        "Fn::If": ["HasKmsKey",
            { "Effect": "Allow", "Action": KMS_ACTIONS, "Resource": { "Ref": "KmsKeyArn" } },
            { "Ref": "AWS::NoValue" }]
    });
    let function = |handler: &str, description: &str, statements: Value, reserved: bool| {
        let mut function = json!({
            "Type": "AWS::Serverless::Function",
            "Properties": {
                "Description": description,
                // SAM resolves CodeUri against the template's own folder
                // (pqmigrate-lambda/deploy/), so this is the workspace's target/lambda/<handler>/,
                // where the README's build lines put each bootstrap.
                "CodeUri": format!("../../target/lambda/{handler}/"),
                // The stock bootstrap (pqmigrate-bootstrap) runs the handler named here; a
                // bootstrap with steps compiled in runs its own and ignores it.
                "Handler": handler,
                "Runtime": "provided.al2023",
                "Architectures": [{ "Ref": "Architecture" }],
                "MemorySize": { "Ref": "MemorySize" },
                // Below the Task's TimeoutSeconds: the invocation's deadline comes first, and
                // the handler gives up cleanly before it.
                "Timeout": options.task_timeout_seconds.saturating_sub(FUNCTION_TIMEOUT_MARGIN_SECONDS),
                "Environment": { "Variables": { "PQM_LOG": "info", "PQM_MIGRATIONS": { "Ref": "Migrations" } } },
                "Policies": [ { "Statement": statements } ]
            }
        });
        if reserved {
            function["Properties"]["ReservedConcurrentExecutions"] = json!({ "Ref": "ReservedConcurrency" });
        }
        function
    };
    let substitutions = json!({
        "MigrateFunctionArn": { "Fn::GetAtt": ["MigrateFunction", "Arn"] },
        "ScanFunctionArn": { "Fn::GetAtt": ["ScanFunction", "Arn"] },
        "MapExecutionType": { "Ref": "MapExecutionType" }
    });
    let parent_name = json!({ "Fn::Sub": "${AWS::StackName}-parent" });
    json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Transform": "AWS::Serverless-2016-10-31",
        "Description": "pqmigrate: controlled, versioned schema migration of a Parquet data set in S3",
        "Parameters": {
            "DataBucket": { "Type": "String", "Description": "Bucket holding the data set (versioning on is recommended)" },
            "Architecture": { "Type": "String", "Default": "x86_64", "AllowedValues": ["x86_64", "arm64"] },
            "MemorySize": { "Type": "Number", "Default": 1024, "MinValue": 256, "MaxValue": 10240 },
            "ReservedConcurrency": {
                "Type": "Number", "Default": 100, "MinValue": 1,
                "Description": "Invocations of the migrate function at once, at most"
            },
            "KmsKeyArn": {
                "Type": "String", "Default": "",
                "Description": "The KMS key of an SSE-KMS bucket (empty for none): the functions and the Map may use it"
            },
            "Migrations": {
                "Type": "String", "Default": "",
                "Description": "Where the stock bootstrap reads the migration files (s3://<DataBucket>/_pqmigrate/migrations, one folder a schema id) when an execution's input names none; empty with bootstraps that have their steps compiled in"
            },
            "MapExecutionType": {
                "Type": "String", "Default": "STANDARD", "AllowedValues": ["STANDARD", "EXPRESS"],
                "Description": "Child workflows of the Distributed Map: EXPRESS is billed by duration (cheaper per object) and limited to 5 minutes"
            }
        },
        "Conditions": {
            "HasKmsKey": { "Fn::Not": [ { "Fn::Equals": [ { "Ref": "KmsKeyArn" }, "" ] } ] }
        },
        "Resources": {
            "MigrateFunction": function("migrate", "pqmigrate: migrate one object", json!([
                { "Effect": "Allow", "Action": MIGRATE_OBJECT_ACTIONS, "Resource": objects_arn },
                { "Effect": "Allow", "Action": INTERNAL_ACTIONS, "Resource": internal_arn },
                { "Effect": "Allow", "Action": MIGRATE_BUCKET_ACTIONS, "Resource": bucket_arn },
                kms
            ]), true),
            "ScanFunction": function("scan", "pqmigrate: begin a run, list the data set and write the manifest; close the run", json!([
                { "Effect": "Allow", "Action": SCAN_BUCKET_ACTIONS, "Resource": bucket_arn },
                { "Effect": "Allow", "Action": SCAN_OBJECT_ACTIONS, "Resource": objects_arn },
                { "Effect": "Allow", "Action": INTERNAL_ACTIONS, "Resource": internal_arn },
                kms
            ]), false),
            "ObjectStateMachine": {
                "Type": "AWS::Serverless::StateMachine",
                "Properties": {
                    "Definition": object_state_machine(&substituted),
                    "DefinitionSubstitutions": substitutions,
                    "Policies": [ { "LambdaInvokePolicy": { "FunctionName": { "Ref": "MigrateFunction" } } } ]
                }
            },
            "ParentStateMachine": {
                "Type": "AWS::Serverless::StateMachine",
                "Properties": {
                    "Name": parent_name,
                    "Definition": parent_state_machine(&substituted),
                    "DefinitionSubstitutions": substitutions,
                    "Policies": [
                        { "LambdaInvokePolicy": { "FunctionName": { "Ref": "MigrateFunction" } } },
                        { "LambdaInvokePolicy": { "FunctionName": { "Ref": "ScanFunction" } } },
                        { "Statement": [
                            // ItemReader reads the manifest; ResultWriter writes the results.
                            { "Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"], "Resource": internal_arn },
                            // The Distributed Map starts, watches and stops its own child executions.
                            { "Effect": "Allow", "Action": ["states:StartExecution"],
                              "Resource": { "Fn::Sub": "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:stateMachine:${AWS::StackName}-parent" } },
                            { "Effect": "Allow", "Action": ["states:DescribeExecution", "states:StopExecution"],
                              "Resource": { "Fn::Sub": "arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:execution:${AWS::StackName}-parent/*" } },
                            kms
                        ] }
                    ]
                }
            }
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
