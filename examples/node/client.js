// A Node client of openai-grpc-gateway: streams a response, printing each text delta as it
// arrives, and on failure reads the error's details (google.rpc.ErrorInfo reason, RetryInfo).
//
//   cd examples/node && npm install
//   node client.js 127.0.0.1:50051 [MODEL] [PROTO_DIR]
//
// The stubs are built at run time from the gateway's protos by @grpc/proto-loader; the error
// details are decoded with protobufjs from the googleapis protos in google-proto-files. The last
// line printed is a JSON summary (tests/clients.rs reads it).

const path = require("node:path");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");
const protobuf = require("protobufjs");
const { getProtoPath } = require("google-proto-files");

const address = process.argv[2] ?? "127.0.0.1:50051";
const model = process.argv[3] ?? "gpt-4.1";
const protoDir = process.argv[4] ?? path.join(__dirname, "..", "..", "proto");

const definition = protoLoader.loadSync("openai_gateway/v1/responses.proto", {
  includeDirs: [protoDir],
  keepCase: true, // the proto's snake_case names, as in OpenAI's JSON
  longs: Number,
  defaults: false,
  oneofs: true, // message.event names the variant that is set
});
const { ResponsesService } = grpc.loadPackageDefinition(definition).openai_gateway.v1;
const client = new ResponsesService(address, grpc.credentials.createInsecure());

// google.rpc.Status and its detail messages, for the `grpc-status-details-bin` trailer.
const rpc = new protobuf.Root().loadSync(
  [getProtoPath("rpc", "status.proto"), getProtoPath("rpc", "error_details.proto")],
  { keepCase: true },
);
const StatusProto = rpc.lookupType("google.rpc.Status");

/** The error details the gateway attached: ErrorInfo and RetryInfo, decoded. */
function details(err) {
  const [raw] = err.metadata?.get("grpc-status-details-bin") ?? [];
  const out = { reason: "", domain: "", retryDelaySeconds: null, upstreamRequestId: "" };
  if (!raw) return out;
  for (const any of StatusProto.decode(raw).details) {
    const typeName = any.type_url.slice(any.type_url.lastIndexOf("/") + 1);
    if (typeName === "google.rpc.ErrorInfo") {
      const info = rpc.lookupType(typeName).decode(any.value);
      out.reason = info.reason;
      out.domain = info.domain;
      out.upstreamRequestId = info.metadata?.upstreamRequestId ?? "";
    } else if (typeName === "google.rpc.RetryInfo") {
      const delay = rpc.lookupType(typeName).decode(any.value).retry_delay ?? {};
      out.retryDelaySeconds = Number(delay.seconds ?? 0) + (delay.nanos ?? 0) / 1e9;
    }
  }
  return out;
}

const request = { model, input_text: "Write a haiku about gRPC." };
const call = client.CreateResponse(request, { deadline: Date.now() + 60_000 });
let joined = "";
let outputText = null;
let events = 0;
let failed = false;
call.on("data", (message) => {
  events += 1;
  if (message.event === "output_text_delta") {
    joined += message.output_text_delta.delta ?? "";
    process.stdout.write(message.output_text_delta.delta ?? "");
  } else if (message.event === "completed") {
    outputText = message.completed.response.output_text;
    process.stdout.write(`\nusage: ${message.completed.response.usage?.total_tokens} tokens\n`);
  }
});
call.on("error", (err) => {
  failed = true;
  const d = details(err);
  console.log(`${grpc.status[err.code]}: ${err.details}`);
  if (d.retryDelaySeconds !== null) console.log(`retry after ${d.retryDelaySeconds} s`);
  console.log(JSON.stringify({ code: grpc.status[err.code], events, ...d }));
  client.close();
});
// grpc-js ends the stream after an error too: only a clean end is a success.
call.on("end", () => {
  if (failed) return;
  console.log(JSON.stringify({ code: "OK", events, joined, outputText }));
  client.close();
});
