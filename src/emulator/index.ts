/** The local ECR (`ecrx serve`) as a library: start it in-process, e.g. as a test server. */
export {
  DEFAULT_ACCOUNT_ID,
  DEFAULT_PORT,
  DEFAULT_PUBLIC_REGISTRY_ALIAS,
  DEFAULT_REGION,
  ECR_PUBLIC_REGION,
  MAX_REQUEST_BODY_BYTES,
  serve,
  startFront,
  type FrontOptions,
  type RunningFront,
  type RunningServer,
  type ServeOptions,
} from "./server.js";
export {
  ApiError,
  type OperationHandler,
  type OperationTable,
  type RequestContext,
  type ServiceName,
} from "./api.js";
export { parseFaultSpec, type FaultKind, type FaultRule } from "./faults.js";
export { DEFAULT_RATES, type RatesMode } from "./rates.js";
