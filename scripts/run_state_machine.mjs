// Runs a shipped state machine definition in aws-local-stepfunctions (npm), an ASL interpreter,
// with every Lambda Task sent to a loopback gateway that invokes the real bootstrap binaries
// through the Lambda Runtime API (tests/support/runtime_api.rs). Used by tests/state_machines.rs.
//
//   node scripts/run_state_machine.mjs DEFINITION.json < '{"executions": [input, ...], "concurrency": 8}'
//
// Environment: PQM_INVOKE_URL (the gateway), PQM_ASL_MODULE (the package's entry file).
// Prints one JSON line per execution: {"status": "SUCCEEDED", "output": ...} or
// {"status": "FAILED", "error": ..., "cause": ...}.
//
// What the interpreter lacks is supplied here, and only that:
// - A Distributed Map's ItemReader (S3 getObject of a JSONL manifest) becomes a Task state in
//   front of the Map, answered by the gateway from the same bucket, whose items the Map reads
//   through ItemsPath; ResultWriter (results to S3, which no later state reads) and
//   ToleratedFailurePercentagePath are dropped, so a failed child fails the Map and its Catch
//   runs, as it would once failures passed the tolerated share.
// - A Lambda error reaches the machine as Step Functions shows it: Error = the function's
//   errorType, Cause = the error object as JSON.

import { readFileSync } from "node:fs";

// The interpreter uses Promise.withResolvers (Node.js 22); the machines here run Node.js 20.
Promise.withResolvers ??= function () {
  let resolve, reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
};

const { StateMachine } = await import(process.env.PQM_ASL_MODULE);
const gateway = process.env.PQM_INVOKE_URL;
const definition = JSON.parse(readFileSync(process.argv[2], "utf8"));
const { executions, concurrency = 8 } = JSON.parse(readFileSync(0, "utf8"));

const ITEMS = "$.pqmItemReaderItems";
const handlers = {};

async function post(path, body) {
  const answer = await fetch(`${gateway}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await answer.text();
  const value = text ? JSON.parse(text) : null;
  if (answer.status === 200) return value;
  const error = new Error(JSON.stringify(value));
  error.name = value?.errorType ?? "Lambda.Unknown";
  throw error;
}

/** Rewrites the Distributed Map parts the interpreter cannot run (see above), in place. */
function localize(states) {
  for (const [name, state] of Object.entries({ ...states })) {
    if (state.Type === "Task" && /^arn:aws:lambda:/.test(state.Resource)) {
      const fn = state.Resource.split(":function:")[1];
      handlers[name] = (input) => post(`/function/${fn}`, input);
    }
    if (state.Type !== "Map") continue;
    const processor = state.ItemProcessor ?? state.Iterator;
    localize(processor.States);
    if (!state.ItemReader) continue;
    const reader = `${name} (ItemReader)`;
    const mapName = `${name} (items)`;
    const { ItemReader, ResultWriter, ToleratedFailurePercentagePath, ...map } = state;
    void ResultWriter;
    void ToleratedFailurePercentagePath;
    processor.ProcessorConfig = { Mode: "INLINE" };
    states[reader] = {
      Type: "Task",
      Resource: ItemReader.Resource,
      Parameters: ItemReader.Parameters,
      ResultPath: ITEMS,
      Next: mapName,
      ...(state.Catch ? { Catch: state.Catch } : {}),
    };
    handlers[reader] = (parameters) => post("/items", { ...parameters, ReaderConfig: ItemReader.ReaderConfig });
    states[mapName] = { ...map, ItemsPath: ITEMS };
    delete states[name];
    // Whatever led to the Map now leads to its reader.
    for (const other of Object.values(states)) {
      if (other.Next === name) other.Next = reader;
      if (other.Default === name) other.Default = reader;
      for (const list of [other.Choices, other.Catch]) for (const c of list ?? []) if (c.Next === name) c.Next = reader;
    }
    if (definition.StartAt === name) definition.StartAt = reader;
  }
}

localize(definition.States);
const machine = new StateMachine(definition);
// Retry pauses shortened: the schedule is Step Functions' to keep, not this test's to wait out.
const retryIntervalOverrides = Object.fromEntries(Object.keys(handlers).map((name) => [name, 10]));

async function one(input) {
  try {
    const output = await machine.run(input, {
      overrides: { taskResourceLocalHandlers: handlers, retryIntervalOverrides },
    }).result;
    return { status: "SUCCEEDED", output };
  } catch (e) {
    // The interpreter wraps what ended the execution (a Fail state, an uncaught error).
    const ended = e.cause instanceof Error ? e.cause : e;
    return { status: "FAILED", error: ended.name, cause: ended.message };
  }
}

const results = new Array(executions.length);
let next = 0;
await Promise.all(
  Array.from({ length: Math.min(concurrency, executions.length) }, async () => {
    while (next < executions.length) {
      const i = next++;
      results[i] = await one(executions[i]);
    }
  }),
);
for (const r of results) console.log(JSON.stringify(r));
