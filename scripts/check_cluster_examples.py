#!/usr/bin/env python3
"""Checks the shipped cluster examples offline, each against its platform's own definition:
the Kubernetes Indexed Job with kubernetes-validate (strict), the AWS Batch job definition and
array-job submission with botocore's model of the Batch API; and that each tells the workers
the same shard count the platform runs.

    scripts/check_cluster_examples.py [DIR]   # default examples/cluster
"""
import json
import pathlib
import subprocess
import sys

import botocore.session
import yaml
from botocore.validate import ParamValidator

folder = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "examples/cluster")
failures = []

job = folder / "k8s-indexed-job.yaml"
checked = subprocess.run(["kubernetes-validate", "--strict", "--quiet", str(job)], capture_output=True, text=True)
if checked.returncode != 0:
    failures.append(f"{job}: {checked.stdout}{checked.stderr}")
spec = yaml.safe_load(job.read_text())["spec"]
container = spec["template"]["spec"]["containers"][0]
env = {e["name"]: e.get("value") for e in container.get("env", [])}
if spec.get("completionMode") != "Indexed":
    failures.append(f"{job}: completionMode must be Indexed, so each pod gets JOB_COMPLETION_INDEX")
if env.get("PQM_SHARD_COUNT") != str(spec["completions"]):
    failures.append(f"{job}: PQM_SHARD_COUNT {env.get('PQM_SHARD_COUNT')} != completions {spec['completions']}")
if "--shard" not in container["args"] or container["args"][container["args"].index("--shard") + 1] != "auto":
    failures.append(f"{job}: the workers must run with --shard auto")

batch = botocore.session.get_session().get_service_model("batch")
documents = {}
for operation, name in [("RegisterJobDefinition", "aws-batch-job-definition.json"), ("SubmitJob", "aws-batch-submit-job.json")]:
    path = folder / name
    document = json.loads(path.read_text())
    documents[operation] = document
    report = ParamValidator().validate(document, batch.operation_model(operation).input_shape)
    if report.has_errors():
        failures.append(f"{path}: {report.generate_report()}")
if not failures:
    definition = documents["RegisterJobDefinition"]["containerProperties"]
    batch_env = {e["name"]: e["value"] for e in definition.get("environment", [])}
    size = documents["SubmitJob"].get("arrayProperties", {}).get("size")
    if batch_env.get("PQM_SHARD_COUNT") != str(size):
        failures.append(f"AWS Batch: PQM_SHARD_COUNT {batch_env.get('PQM_SHARD_COUNT')} != array size {size}")
    if documents["SubmitJob"]["jobDefinition"] != documents["RegisterJobDefinition"]["jobDefinitionName"]:
        failures.append("AWS Batch: the submission names another job definition")

for failure in failures:
    print(failure, file=sys.stderr)
sys.exit(1 if failures else 0)
