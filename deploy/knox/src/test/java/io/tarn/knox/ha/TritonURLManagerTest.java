package io.tarn.knox.ha;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertTrue;

import io.tarn.knox.TestServers;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.UUID;
import java.util.function.BooleanSupplier;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.retry.RetryOneTime;
import org.apache.knox.gateway.ha.provider.HaServiceConfig;
import org.apache.knox.gateway.ha.provider.URLManager;
import org.apache.knox.gateway.ha.provider.URLManagerLoader;
import org.apache.knox.gateway.ha.provider.impl.DefaultHaServiceConfig;
import org.apache.knox.gateway.ha.provider.impl.DefaultURLManager;
import org.apache.zookeeper.CreateMode;
import org.junit.After;
import org.junit.Before;
import org.junit.Test;

/** The TRITON URL manager against a real ZooKeeper, with znodes as tarn-gateway-sync writes them. */
public class TritonURLManagerTest {
  private static final long CHANGE_DEADLINE_MS = 2000;

  private CuratorFramework zk;
  private String base;
  private final List<String> namespaces = new ArrayList<>();

  @Before
  public void connect() throws Exception {
    zk = CuratorFrameworkFactory.newClient(TestServers.zookeeper(), new RetryOneTime(500));
    zk.start();
    zk.blockUntilConnected();
    base = "/tarn-knox-junit-" + UUID.randomUUID().toString().substring(0, 8);
  }

  @After
  public void cleanUp() throws Exception {
    for (String namespace : namespaces) {
      InstanceDirectory.shared(TestServers.zookeeper(), namespace).close();
    }
    if (zk.checkExists().forPath(base) != null) {
      zk.delete().deletingChildrenIfNeeded().forPath(base);
    }
    zk.close();
  }

  private static HaServiceConfig config(String role, String ensemble, String namespace) {
    DefaultHaServiceConfig config = new DefaultHaServiceConfig(role);
    config.setEnabled(true);
    config.setZookeeperEnsemble(ensemble);
    config.setZookeeperNamespace(namespace);
    return config;
  }

  private URLManager manager(String namespace) {
    namespaces.add(namespace);
    return URLManagerLoader.loadURLManager(config("TRITON", TestServers.zookeeper(), namespace));
  }

  private static byte[] record(String host, int port) {
    String json = "{\"url\":\"http://" + host + ":" + port + "\",\"host\":\"" + host + "\",\"port\":" + port
        + ",\"container_id\":\"container_" + port + "\",\"app_id\":\"application_1_0001\",\"models\":[\"identity\"]}";
    return json.getBytes(StandardCharsets.UTF_8);
  }

  private void register(String parent, String host, int port) throws Exception {
    zk.create().creatingParentContainersIfNeeded().withMode(CreateMode.EPHEMERAL)
        .forPath(parent + "/" + host + ":" + port, record(host, port));
  }

  private static long waitFor(BooleanSupplier condition, String what) throws InterruptedException {
    long start = System.nanoTime();
    while (!condition.getAsBoolean()) {
      if ((System.nanoTime() - start) / 1_000_000 > CHANGE_DEADLINE_MS) {
        throw new AssertionError(what + " not seen within " + CHANGE_DEADLINE_MS + " ms");
      }
      Thread.sleep(2);
    }
    return (System.nanoTime() - start) / 1_000_000;
  }

  @Test
  public void serviceLoaderPicksItForTritonWithAnEnsembleOnly() {
    String namespace = base + "/services/triton";
    assertTrue(manager(namespace) instanceof TritonURLManager);
    URLManager noEnsemble = URLManagerLoader.loadURLManager(config("TRITON", "", namespace));
    assertTrue(noEnsemble instanceof DefaultURLManager);
    assertFalse(new TritonURLManager().supportsConfig(config("HIVE", TestServers.zookeeper(), namespace)));
  }

  @Test
  public void readsTheInstancesChildOfTheSeedsNamespace() throws Exception {
    String namespace = base + "/services/triton";
    register(namespace + "/instances", "127.0.0.1", 8001);
    register(namespace + "/instances", "127.0.0.2", 8002);
    zk.create().forPath(namespace + "/leader", "not an instance".getBytes(StandardCharsets.UTF_8));
    URLManager manager = manager(namespace);
    assertEquals(Arrays.asList("http://127.0.0.1:8001", "http://127.0.0.2:8002"), manager.getURLs());
  }

  @Test
  public void readsTheNamespaceItselfWhenItHasNoInstancesChild() throws Exception {
    String namespace = base + "/services/triton/instances";
    register(namespace, "127.0.0.1", 8001);
    assertEquals(Collections.singletonList("http://127.0.0.1:8001"), manager(namespace).getURLs());
  }

  @Test
  public void followsInstancesComingAndGoing() throws Exception {
    String namespace = base + "/services/triton";
    String parent = namespace + "/instances";
    register(parent, "127.0.0.1", 8001);
    final URLManager manager = manager(namespace);
    register(parent, "127.0.0.1", 8002);
    long addedMs = waitFor(() -> manager.getURLs().contains("http://127.0.0.1:8002"), "the new instance");
    zk.delete().forPath(parent + "/127.0.0.1:8001");
    long removedMs = waitFor(() -> !manager.getURLs().contains("http://127.0.0.1:8001"), "the removal");
    assertEquals(Collections.singletonList("http://127.0.0.1:8002"), manager.getURLs());
    assertEquals("http://127.0.0.1:8002", manager.getActiveURL());
    System.out.println("znode change to URL manager: added in " + addedMs + " ms, removed in " + removedMs + " ms");
  }

  @Test
  public void seesTheNamespaceWhenItAppearsAfterStart() throws Exception {
    String namespace = base + "/late/services/triton";
    final URLManager manager = manager(namespace);
    assertTrue(manager.getURLs().isEmpty());
    assertNull(manager.getActiveURL());
    register(namespace + "/instances", "127.0.0.1", 8003);
    waitFor(() -> manager.getURLs().equals(Collections.singletonList("http://127.0.0.1:8003")), "the late instance");
  }

  @Test
  public void followsAChangedRecord() throws Exception {
    String namespace = base + "/services/triton";
    String node = namespace + "/instances/node1:8000";
    zk.create().creatingParentContainersIfNeeded().withMode(CreateMode.EPHEMERAL).forPath(node, record("127.0.0.1", 8004));
    final URLManager manager = manager(namespace);
    zk.setData().forPath(node, record("127.0.0.1", 8005));
    waitFor(() -> manager.getURLs().equals(Collections.singletonList("http://127.0.0.1:8005")), "the new record");
  }

  @Test
  public void balancesRoundRobinAcrossLiveInstances() throws Exception {
    String namespace = base + "/services/triton";
    for (int port = 8001; port <= 8003; port++) {
      register(namespace + "/instances", "127.0.0.1", port);
    }
    URLManager manager = manager(namespace);
    List<String> seen = new ArrayList<>();
    for (int i = 0; i < 6; i++) {
      seen.add(manager.getActiveURL());
      manager.makeNextActiveURLAvailable();
    }
    List<String> once = Arrays.asList("http://127.0.0.1:8001", "http://127.0.0.1:8002", "http://127.0.0.1:8003");
    List<String> twice = new ArrayList<>(once);
    twice.addAll(once);
    assertEquals(twice, seen);
  }

  @Test
  public void passesOverAnInstanceThatFailedARequest() throws Exception {
    String namespace = base + "/services/triton";
    register(namespace + "/instances", "127.0.0.1", 8001);
    register(namespace + "/instances", "127.0.0.1", 8002);
    URLManager manager = manager(namespace);
    manager.markFailed("http://127.0.0.1:8001/v2/models/identity/infer");
    Set<String> used = new HashSet<>();
    for (int i = 0; i < 4; i++) {
      used.add(manager.getActiveURL());
      manager.makeNextActiveURLAvailable();
    }
    assertEquals(Collections.singleton("http://127.0.0.1:8002"), used);
  }

  @Test
  public void topologyUrlsDoNotReplaceZooKeeper() throws Exception {
    String namespace = base + "/services/triton";
    register(namespace + "/instances", "127.0.0.1", 8001);
    URLManager manager = manager(namespace);
    manager.setURLs(Collections.singletonList("http://elsewhere:1"));
    assertEquals(Collections.singletonList("http://127.0.0.1:8001"), manager.getURLs());
  }
}
