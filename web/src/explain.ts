// Turns a failed call into words for a person, from the gRPC status code and the
// google.rpc.ErrorInfo reason the gateway attaches to every error (README, "Errors"). The
// message text is shown as it came but never parsed: reasons are the contract, messages are not.

import { Code, ConnectError } from "@connectrpc/connect";
import {
  BadRequestSchema,
  ErrorInfoSchema,
  RetryInfoSchema,
} from "../gen/google/rpc/error_details_pb";

/** What the page shows for a failed call. */
export interface Explained {
  /** One line: what went wrong. */
  title: string;
  /** What to do about it. */
  advice: string;
  /** The gRPC code's name, e.g. `NOT_FOUND`. */
  code: string;
  /** The ErrorInfo reason, e.g. `UPSTREAM_NOT_FOUND` ("" when there is none). */
  reason: string;
  /** The RetryInfo delay in seconds, when waiting helps. */
  retryAfterSeconds?: number;
  /** OpenAI's request id, when the upstream answered. */
  requestId?: string;
  /** BadRequest field violations: `field: description`. */
  violations: string[];
  /** The status message as the gateway sent it. */
  message: string;
}

/** gRPC's names for the codes (Connect's `Code` enum has the same numbers). */
const CODE_NAMES: Record<number, string> = {
  [Code.Canceled]: "CANCELLED",
  [Code.Unknown]: "UNKNOWN",
  [Code.InvalidArgument]: "INVALID_ARGUMENT",
  [Code.DeadlineExceeded]: "DEADLINE_EXCEEDED",
  [Code.NotFound]: "NOT_FOUND",
  [Code.AlreadyExists]: "ALREADY_EXISTS",
  [Code.PermissionDenied]: "PERMISSION_DENIED",
  [Code.ResourceExhausted]: "RESOURCE_EXHAUSTED",
  [Code.FailedPrecondition]: "FAILED_PRECONDITION",
  [Code.Aborted]: "ABORTED",
  [Code.OutOfRange]: "OUT_OF_RANGE",
  [Code.Unimplemented]: "UNIMPLEMENTED",
  [Code.Internal]: "INTERNAL",
  [Code.Unavailable]: "UNAVAILABLE",
  [Code.DataLoss]: "DATA_LOSS",
  [Code.Unauthenticated]: "UNAUTHENTICATED",
};

/** Explains `error` (anything a call threw); `model` is the model the call asked for. */
export function explain(error: unknown, model: string): Explained {
  const err = ConnectError.from(error);
  const info = err.findDetails(ErrorInfoSchema)[0];
  const retry = err.findDetails(RetryInfoSchema)[0]?.retryDelay;
  const badRequest = err.findDetails(BadRequestSchema)[0];
  const reason = info?.reason ?? "";
  const out: Explained = {
    title: "",
    advice: "",
    code: CODE_NAMES[err.code] ?? `code ${err.code}`,
    reason,
    requestId: info?.metadata["upstreamRequestId"] || undefined,
    violations: (badRequest?.fieldViolations ?? []).map(
      (v) => `${v.field}: ${v.description}`,
    ),
    message: err.rawMessage,
  };
  if (retry) {
    out.retryAfterSeconds = Number(retry.seconds) + retry.nanos / 1e9;
  }
  const wait =
    out.retryAfterSeconds !== undefined
      ? `Try again in ${formatSeconds(out.retryAfterSeconds)}.`
      : "Try again later.";
  const [title, advice] = words(err.code, reason, model, wait);
  out.title = title;
  out.advice = advice;
  return out;
}

/** The explanation for a code and reason: [what happened, what to do]. */
function words(code: Code, reason: string, model: string, wait: string): [string, string] {
  switch (reason) {
    case "UPSTREAM_UNAUTHENTICATED":
      return [
        "Wrong API key: OpenAI rejected the key (missing, mistyped or revoked).",
        "Check the OpenAI key the gateway (or the chosen profile) uses; the message says whose key it was.",
      ];
    case "CALLER_UNAUTHENTICATED":
      return [
        "This gateway needs a caller token.",
        "Enter your token under Connection > Caller token (the gateway runs with --auth-tokens).",
      ];
    case "UPSTREAM_PERMISSION_DENIED":
      return [
        "Missing permission: the API key may not use this model or endpoint.",
        "A restricted key or a project without access to the model: allow it in OpenAI's dashboard, or use another key.",
      ];
    case "PROFILE_NOT_ALLOWED":
      return [
        "This caller may not use that profile.",
        "Pick another profile under Connection, or ask for access.",
      ];
    case "CALLER_KEYS_DISABLED":
    case "INVALID_CALLER_KEY":
      return ["The gateway does not accept this caller key.", "Use the gateway's own key (leave the key out)."];
    case "UNKNOWN_PROFILE":
      return ["Unknown profile.", "Check the profile name under Connection; the message lists the profiles."];
    case "UPSTREAM_NOT_FOUND":
      return [
        `Unknown model: "${model}" does not exist or your key cannot use it.`,
        "Check the model id (for example gpt-4.1 or gpt-4o-mini) and that your organization has access to it.",
      ];
    case "UPSTREAM_RATE_LIMITED":
      return ["Rate limit reached: too many requests or tokens per minute.", wait];
    case "UPSTREAM_QUOTA_EXCEEDED":
      return [
        "Quota exceeded: the account has run out of credit.",
        "Check your plan and billing details; waiting will not help.",
      ];
    case "OVERLOADED":
    case "TOO_MANY_STREAMS_ON_CONNECTION":
      return ["The gateway is busy.", wait];
    case "INVALID_REQUEST":
      return ["The request is not valid.", "Fix the fields listed below."];
    case "UPSTREAM_INVALID_REQUEST":
      return ["OpenAI refused the request as invalid.", "Fix the field named below and send again."];
    case "UPSTREAM_TIMEOUT":
    case "DEADLINE_EXCEEDED":
      return ["The request took too long.", "Try again, or ask for a shorter answer."];
    case "UPSTREAM_UNAVAILABLE":
    case "UPSTREAM_UNREACHABLE":
    case "UPSTREAM_CONNECTION_LOST":
    case "SHUTTING_DOWN":
      return ["OpenAI (or the gateway) is unavailable right now.", wait];
  }
  switch (code) {
    case Code.Unauthenticated:
      return ["Not authenticated.", "Check the caller token and the API key."];
    case Code.PermissionDenied:
      return ["Permission denied.", "The key or caller may not do this."];
    case Code.NotFound:
      return ["Not found.", "Check the model id or the id you asked for."];
    case Code.ResourceExhausted:
      return ["A limit was reached.", wait];
    case Code.InvalidArgument:
      return ["The request is not valid.", "Check the fields and send again."];
    case Code.Unavailable:
      return ["The service is unavailable.", wait];
    case Code.DeadlineExceeded:
      return ["The request took too long.", "Try again."];
    case Code.Canceled:
      return ["Cancelled.", ""];
    default:
      return ["The call failed.", "The details below say why."];
  }
}

function formatSeconds(s: number): string {
  return s >= 10 ? `${Math.round(s)} s` : `${Math.round(s * 10) / 10} s`;
}
