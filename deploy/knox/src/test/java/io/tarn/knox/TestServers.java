package io.tarn.knox;

import static org.junit.Assert.fail;

/**
 * Where the real servers are: ZooKeeper and a tarn-authz process, started by
 * tests/knox/test_knox_junit.py (which runs this suite) and passed as TARN_TEST_* variables.
 * The authz process serves the policies written by tests/knox/support.py (see POLICIES there):
 * alice may infer, read metadata of and list add_sub; bob may infer on identity; the group
 * analysts may infer on and read metadata of identity; carol may list every model; mallory
 * may do nothing.
 */
public final class TestServers {
  private TestServers() {
  }

  public static String zookeeper() {
    return required("tarn.zk.hosts", "TARN_TEST_ZK_HOSTS");
  }

  public static String authzUrl() {
    return required("tarn.authz.url", "TARN_TEST_AUTHZ_URL");
  }

  public static String authzToken() {
    return required("tarn.authz.token", "TARN_TEST_AUTHZ_GATEWAY_TOKEN");
  }

  private static String required(String property, String variable) {
    String value = System.getProperty(property);
    if (value == null || value.isEmpty() || value.startsWith("${")) {
      fail(variable + " is not set: these tests need the real servers; run them with "
          + ".venv/bin/python -m pytest tests/knox/test_knox_junit.py");
    }
    return value;
  }
}
