package io.tarn.knox.authz;

import static org.junit.Assert.assertEquals;

import org.junit.Test;

/** The path mapping, case by case as deploy/haproxy/tarn_authz.lua's classify decides. */
public class OipRouteTest {
  private static void expect(String path, String route) {
    assertEquals(path, route, OipRoute.classify(path).toString());
  }

  @Test
  public void inferenceAndGenerationNeedInfer() {
    expect("/v2/models/add_sub/infer", "infer on add_sub");
    expect("/v2/models/add_sub/versions/1/infer", "infer on add_sub");
    expect("/v2/models/llm/generate", "infer on llm");
    expect("/v2/models/llm/versions/12/generate_stream", "infer on llm");
  }

  @Test
  public void metadataConfigAndReadyNeedMetadata() {
    expect("/v2/models/identity", "metadata on identity");
    expect("/v2/models/identity/versions/2", "metadata on identity");
    expect("/v2/models/identity/config", "metadata on identity");
    expect("/v2/models/identity/versions/2/ready", "metadata on identity");
  }

  @Test
  public void modelNamesAreTakenVerbatimAsTritonDoes() {
    expect("/v2/models/IDENTITY/infer", "infer on IDENTITY");
    expect("/v2/models/a.b-c_d~1/ready", "metadata on a.b-c_d~1");
  }

  @Test
  public void pathsNotInCanonicalFormAreRefused() {
    String[] refused = {"/v2/models/%69dentity/infer", "/v2/models/identity%2Finfer", "/v2//models/identity/infer",
        "/v2/models/x/../identity/infer", "/v2/models/./identity/infer", "/v2/models/identity/infer/", "/v2/",
        "/v2/models/identity;x=1/infer", "/v2/models/identity/infer;x", "/v2/models/a/../../repository/index",
        "/v2/models/add_sub/versions//infer", "/v2/models/identity\\/infer", "/v2/models/caf\u00e9/ready",
        "/v2/models/a b/infer", "/v2/models/identity/infer#x", "v2/models/identity/infer", "/v2/models/identity/..", ""};
    for (String path : refused) {
      expect(path, "refuse");
    }
  }

  @Test
  public void serverEndpointsNeedOnlyAnAuthenticatedUser() {
    for (String path : new String[] {"/v2", "/v2/health/live", "/v2/health/ready"}) {
      expect(path, "server");
    }
  }

  @Test
  public void repositoryIndexIsFilteredByList() {
    expect("/v2/repository/index", "index");
  }

  @Test
  public void everythingElseIsDenied() {
    String[] denied = {"/", "/v2/models", "/v2/models/stats", "/v2/models/add_sub/stats",
        "/v2/models/add_sub/trace/setting", "/v2/repository/models/add_sub/load", "/v2/trace/setting",
        "/v2/logging", "/v2/health", "/metrics", "/v2/systemsharedmemory/status", "/V2/Models/identity/infer",
        "/v2/models/identity/versions/latest/infer", "/v2/models/identity/INFER", "/v2/repository/r/index"};
    for (String path : denied) {
      expect(path, "deny");
    }
  }

  @Test
  public void servicePathIsWhatFollowsTheTopologyAndRoute() {
    assertEquals("/v2/models/m/infer", OipRoute.servicePath("/gateway/tarn/triton/v2/models/m/infer", "/gateway/tarn", "/triton"));
    assertEquals("", OipRoute.servicePath("/gateway/tarn/triton", "/gateway/tarn", "/triton"));
    assertEquals(null, OipRoute.servicePath("/gateway/tarn/tritonx/v2", "/gateway/tarn", "/triton"));
    assertEquals("/triton", OipRoute.routePrefix("/triton/**?**"));
    assertEquals("/a/b", OipRoute.routePrefix("/a/b/{path=**}"));
  }
}
