import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration tests start servers on port 0 and push tens of MiB; two cores are all we have.
    pool: "forks",
    maxWorkers: 2,
    // The SDK's notice that its 2027 releases need Node 22 is noise in every test's output.
    env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true" },
  },
});
