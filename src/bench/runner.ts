/**
 * The process of one measured push or pull of `ecrx bench` (not a user command): reads a RunSpec
 * as JSON from its first argument, runs it, and prints one JSON line on stdout, the figures or the
 * error. Exit code 0 only on success.
 */
import { isEcrxError } from "../errors.js";
import { measureRun, type RunSpec } from "./measure.js";

// The SDK's notice that its 2027 releases need Node 22 would land in the benchmark's output.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

try {
  const spec = JSON.parse(process.argv[2] ?? "") as RunSpec;
  const figures = await measureRun(spec);
  process.stdout.write(`${JSON.stringify({ ok: true, figures })}\n`);
} catch (err) {
  const error = {
    ok: false,
    code: isEcrxError(err) ? err.code : "INTERNAL",
    message: err instanceof Error ? err.message : String(err),
  };
  process.stdout.write(`${JSON.stringify(error)}\n`);
  process.exitCode = 1;
}
