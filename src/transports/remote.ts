import type { ECRClient } from "@aws-sdk/client-ecr";
import type { EcrPublicReference, EcrReference } from "../reference/reference.js";
import type { AwsOptions } from "./aws/client-config.js";
import type { EcrApi } from "./ecr/api.js";
import { createEcrClient, PrivateEcrApi } from "./ecr/ecr-api.js";
import { ecrError } from "./ecr/errors.js";
import { createEcrPublicClient, PublicEcrApi, resolvePublicRegistryId } from "./ecr-public/ecr-public-api.js";

/**
 * The ECR API endpoint for a reference: `--endpoint-url` first; then a local server's host
 * (`<account>.dkr.ecr.<region>.localhost:<port>`, printed by `ecrx serve`), reached on loopback;
 * otherwise undefined, and the SDK resolves it (AWS_ENDPOINT_URL_ECR, the profile, or the
 * regional endpoint of AWS).
 */
export function ecrEndpointFor(
  ref: Pick<EcrReference, "host" | "port">,
  options: AwsOptions,
): string | undefined {
  if (options.endpointUrl !== undefined) return options.endpointUrl;
  if (ref.host.endsWith(".localhost")) return `http://127.0.0.1:${ref.port ?? 80}`;
  return undefined;
}

export function privateEcrClient(
  ref: Pick<EcrReference, "host" | "port" | "region">,
  options: AwsOptions,
): ECRClient {
  const endpointUrl = ecrEndpointFor(ref, options);
  return createEcrClient(
    { ...options, ...(endpointUrl === undefined ? {} : { endpointUrl }) },
    options.region ?? ref.region,
  );
}

/** The ECR API (private or Public) of the repository a reference names. */
export async function openEcrApi(
  ref: EcrReference | EcrPublicReference,
  options: AwsOptions,
): Promise<EcrApi> {
  if (ref.kind === "ecr") {
    return new PrivateEcrApi(privateEcrClient(ref, options), {
      registryId: ref.registryId,
      region: ref.region,
      repositoryName: ref.repository,
    });
  }
  const client = createEcrPublicClient(options);
  try {
    const registryId = await resolvePublicRegistryId(client, ref.alias);
    return new PublicEcrApi(client, registryId, ref.repository);
  } catch (err) {
    client.destroy();
    throw ecrError(err, `finding ECR Public registry ${ref.alias}`);
  }
}
