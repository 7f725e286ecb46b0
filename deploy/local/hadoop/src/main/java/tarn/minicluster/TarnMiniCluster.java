package tarn.minicluster;

import java.io.File;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.function.Predicate;

import sun.misc.Signal;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.permission.FsPermission;
import org.apache.hadoop.hdfs.DistributedFileSystem;
import org.apache.hadoop.hdfs.HdfsConfiguration;
import org.apache.hadoop.hdfs.MiniDFSCluster;
import org.apache.hadoop.hdfs.protocol.HdfsConstants.SafeModeAction;
import org.apache.hadoop.metrics2.lib.DefaultMetricsSystem;
import org.apache.hadoop.security.UserGroupInformation;
import org.apache.hadoop.service.Service;
import org.apache.hadoop.yarn.api.records.NodeId;
import org.apache.hadoop.yarn.api.records.NodeLabel;
import org.apache.hadoop.yarn.api.records.NodeState;
import org.apache.hadoop.yarn.conf.YarnConfiguration;
import org.apache.hadoop.yarn.server.nodemanager.NodeManager;
import org.apache.hadoop.yarn.server.resourcemanager.ResourceManager;
import org.apache.hadoop.yarn.server.resourcemanager.nodelabels.RMNodeLabelsManager;
import org.apache.hadoop.yarn.server.resourcemanager.rmnode.RMNode;
import org.apache.hadoop.yarn.util.resource.ResourceUtils;

/**
 * One JVM with HDFS (MiniDFSCluster), a ResourceManager and N NodeManagers, each
 * NodeManager on its own loopback address and host name.
 *
 * Why not MiniHadoopClusterManager / MiniYARNCluster: MiniYARNCluster forces every
 * NodeManager to "localhost:0" (NodeManagerWrapper.serviceInit overwrites
 * yarn.nodemanager.address with MiniYARNCluster.getHostname(), hard-coded "localhost"),
 * so all NodeManagers share one host name and per-node placement cannot be shown.
 * The daemons started here are Hadoop's own classes; only the wiring is ours.
 *
 * Usage: TarnMiniCluster --run-dir DIR --conf-dir DIR --base-conf FILE
 *          --nodemanager HOST=IP [--nodemanager HOST=IP ...] [-D key=value ...]
 * With -D tarn.minicluster.node-labels=HOST=LABEL[,HOST=LABEL...], node labels are on
 * (centralized, exclusive partitions) and those NodeManagers carry them; the default
 * queue may use every label.
 * Writes DIR/cluster.properties and then DIR/ready once the cluster is usable; stops
 * everything on SIGTERM.
 */
public final class TarnMiniCluster {

  private final File runDir;
  private final File confDir;
  private final Configuration conf;
  private final Map<String, String> nodeManagerAddresses;
  private MiniDFSCluster dfs;
  private ResourceManager resourceManager;
  private final List<NodeManager> nodeManagers = new ArrayList<>();

  private TarnMiniCluster(File runDir, File confDir, Configuration conf,
      Map<String, String> nodeManagerAddresses) {
    this.runDir = runDir;
    this.confDir = confDir;
    this.conf = conf;
    this.nodeManagerAddresses = nodeManagerAddresses;
  }

  public static void main(String[] args) throws Exception {
    File runDir = null;
    File confDir = null;
    Map<String, String> nodeManagers = new LinkedHashMap<>();
    List<String> baseConfs = new ArrayList<>();
    Map<String, String> overrides = new LinkedHashMap<>();
    for (int i = 0; i < args.length; i++) {
      String value = i + 1 < args.length ? args[i + 1] : null;
      switch (args[i]) {
        case "--run-dir": runDir = new File(value).getAbsoluteFile(); i++; break;
        case "--conf-dir": confDir = new File(value).getAbsoluteFile(); i++; break;
        case "--base-conf": baseConfs.add(value); i++; break;
        case "--nodemanager": {
          String[] hostIp = value.split("=", 2);
          nodeManagers.put(hostIp[0], hostIp[1]);
          i++;
          break;
        }
        case "-D": {
          String[] kv = value.split("=", 2);
          overrides.put(kv[0], kv[1]);
          i++;
          break;
        }
        default: throw new IllegalArgumentException("unknown argument " + args[i]);
      }
    }
    if (runDir == null || confDir == null || nodeManagers.isEmpty()) {
      throw new IllegalArgumentException(
          "need --run-dir, --conf-dir and at least one --nodemanager HOST=IP");
    }

    // Metrics sources get unique names, as several daemons share this JVM.
    DefaultMetricsSystem.setMiniClusterMode(true);
    Configuration conf = new YarnConfiguration(new HdfsConfiguration());
    // Set, not addResource: set values survive later addResource calls, such as the
    // CapacityScheduler loading the capacity-scheduler.xml shipped in a tests jar.
    for (String base : baseConfs) {
      Configuration file = new Configuration(false);
      file.addResource(new Path(new File(base).getAbsolutePath()));
      for (Map.Entry<String, String> entry : file) {
        conf.set(entry.getKey(), entry.getValue(), base);
      }
    }
    overrides.forEach(conf::set);

    TarnMiniCluster cluster = new TarnMiniCluster(runDir, confDir, conf, nodeManagers);
    // Stop in order on SIGTERM/SIGINT before the JVM's shutdown hooks run: stopping HDFS
    // from inside a hook fails ("Shutdown in progress, cannot remove a shutdownHook").
    for (String name : new String[] {"TERM", "INT"}) {
      Signal.handle(new Signal(name), signal -> {
        cluster.stop();
        System.exit(0);
      });
    }
    try {
      cluster.start();
    } catch (Throwable t) {
      t.printStackTrace();
      System.err.println("TARN minicluster failed to start: " + t);
      System.exit(1);
    }
    Thread.currentThread().join();
  }

  private void start() throws Exception {
    long startedNs = System.nanoTime();
    String yarnHome = new File(runDir, "yarn").getPath();
    conf.set("hadoop.tmp.dir", new File(runDir, "tmp").getPath());
    conf.set(YarnConfiguration.FS_NODE_ATTRIBUTE_STORE_ROOT_DIR,
        new File(yarnHome, "node-attributes").toURI().toString());
    conf.set(YarnConfiguration.NM_REMOTE_APP_LOG_DIR,
        new File(yarnHome, "remote-logs").getPath());
    conf.set("yarn.application.classpath", String.join(",",
        confDir.getPath(), conf.get("tarn.minicluster.lib-dir") + "/*"));

    if ("kerberos".equalsIgnoreCase(conf.get("hadoop.security.authentication", "simple"))) {
      // Secure mode: the daemons below log in themselves; the launcher's own HDFS calls
      // (the /tmp and /user it creates) need a login first.
      UserGroupInformation.setConfiguration(conf);
      UserGroupInformation.loginUserFromKeytab(conf.get("dfs.namenode.kerberos.principal"),
          conf.get("dfs.namenode.keytab.file"));
    }
    Map<String, String> labels = nodeLabels(conf.get("tarn.minicluster.node-labels", ""));
    if (!labels.isEmpty()) {
      enableNodeLabels(new TreeMap<>(labels).values(), yarnHome);
    }
    startDfs();
    startResourceManager();
    int index = 0;
    for (Map.Entry<String, String> nm : nodeManagerAddresses.entrySet()) {
      startNodeManager(index++, nm.getKey(), nm.getValue());
    }
    waitForRunningNodes(nodeManagerAddresses.size(), 120_000);
    if (!labels.isEmpty()) {
      labelNodes(labels);
    }
    writeClientConf();
    writeClusterProperties(System.nanoTime() - startedNs);
    // The marker the start script waits for; written last.
    Files.writeString(new File(runDir, "ready").toPath(), "ready\n");
    System.out.println("TARN minicluster ready");
  }

  private void startDfs() throws IOException {
    File dfsBase = new File(runDir, "dfs");
    conf.set(MiniDFSCluster.HDFS_MINIDFS_BASEDIR, dfsBase.getPath());
    dfs = new MiniDFSCluster.Builder(conf, dfsBase)
        .nameNodePort(0)
        .nameNodeHttpPort(0)
        .numDataNodes(conf.getInt("tarn.minicluster.datanodes", 1))
        .format(true)
        .build();
    dfs.waitActive();
    DistributedFileSystem fs = dfs.getFileSystem();
    // waitActive returns once DataNodes report; safe mode may still be on for a moment.
    long deadline = System.currentTimeMillis() + 60_000;
    while (fs.setSafeMode(SafeModeAction.SAFEMODE_GET)) {
      if (System.currentTimeMillis() > deadline) {
        throw new IOException("HDFS did not leave safe mode within 60 s");
      }
      sleepMs(200);
    }
    // What a fresh cluster has: a world-writable /tmp and a /user for home directories.
    fs.mkdirs(new Path("/tmp"));
    fs.setPermission(new Path("/tmp"), new FsPermission((short) 01777));
    fs.mkdirs(new Path("/user"));
    fs.setPermission(new Path("/user"), new FsPermission((short) 0755));
    Configuration nnConf = dfs.getConfiguration(0);
    conf.set(FileSystem.FS_DEFAULT_NAME_KEY, dfs.getURI().toString());
    InetSocketAddress http = dfs.getNameNode().getHttpAddress();
    conf.set("dfs.namenode.http-address", "127.0.0.1:" + http.getPort());
    conf.set("dfs.namenode.rpc-address", nnConf.get("dfs.namenode.rpc-address"));
  }

  private void startResourceManager() throws Exception {
    // Resource types (yarn.io/gpu) are JVM-wide state in ResourceUtils.
    ResourceUtils.resetResourceTypes(conf);
    String host = conf.get("tarn.minicluster.rm-host", "127.0.0.1");
    for (String key : new String[] {
        YarnConfiguration.RM_ADDRESS, YarnConfiguration.RM_SCHEDULER_ADDRESS,
        YarnConfiguration.RM_RESOURCE_TRACKER_ADDRESS, YarnConfiguration.RM_ADMIN_ADDRESS,
        YarnConfiguration.RM_WEBAPP_ADDRESS}) {
      conf.set(key, host + ":0");
    }
    // Makes the RM write its bound web port back into its configuration.
    conf.setBoolean(YarnConfiguration.IS_MINI_YARN_CLUSTER, true);
    resourceManager = new ResourceManager();
    resourceManager.init(conf);
    resourceManager.start();
    if (resourceManager.getServiceState() != Service.STATE.STARTED) {
      throw new IOException("ResourceManager failed to start: "
          + resourceManager.getServiceState(), resourceManager.getFailureCause());
    }
    // Started services rewrote their addresses with the bound ports into this conf.
    Configuration rmConf = resourceManager.getConfig();
    for (String key : new String[] {
        YarnConfiguration.RM_ADDRESS, YarnConfiguration.RM_SCHEDULER_ADDRESS,
        YarnConfiguration.RM_RESOURCE_TRACKER_ADDRESS, YarnConfiguration.RM_ADMIN_ADDRESS,
        YarnConfiguration.RM_WEBAPP_ADDRESS}) {
      String bound = rmConf.get(key);
      if (bound == null || bound.endsWith(":0")) {
        throw new IOException("ResourceManager did not report its bound " + key);
      }
      conf.set(key, bound);
    }
  }

  private static Map<String, String> nodeLabels(String spec) {
    Map<String, String> labels = new LinkedHashMap<>();
    for (String item : spec.split(",")) {
      if (!item.isBlank()) {
        String[] hostLabel = item.trim().split("=", 2);
        labels.put(hostLabel[0], hostLabel[1]);
      }
    }
    return labels;
  }

  private void enableNodeLabels(Iterable<String> labels, String yarnHome) {
    conf.setBoolean(YarnConfiguration.NODE_LABELS_ENABLED, true);
    conf.set(YarnConfiguration.FS_NODE_LABELS_STORE_ROOT_DIR,
        new File(yarnHome, "node-labels").toURI().toString());
    List<String> names = new ArrayList<>();
    labels.forEach(label -> { if (!names.contains(label)) names.add(label); });
    String all = String.join(",", names);
    for (String queue : new String[] {"root", "root.default"}) {
      String prefix = "yarn.scheduler.capacity." + queue + ".accessible-node-labels";
      conf.set(prefix, all);
      for (String label : names) {
        conf.set(prefix + "." + label + ".capacity", "100");
        conf.set(prefix + "." + label + ".maximum-capacity", "100");
      }
    }
  }

  private void labelNodes(Map<String, String> labels) throws IOException {
    RMNodeLabelsManager manager = resourceManager.getRMContext().getNodeLabelManager();
    List<NodeLabel> cluster = new ArrayList<>();
    for (String label : new java.util.TreeSet<>(labels.values())) {
      cluster.add(NodeLabel.newInstance(label, true));
    }
    manager.addToCluserNodeLabels(cluster);
    Map<NodeId, java.util.Set<String>> onNodes = new HashMap<>();
    for (RMNode node : resourceManager.getRMContext().getRMNodes().values()) {
      String label = labels.get(node.getNodeID().getHost());
      if (label != null) {
        onNodes.put(node.getNodeID(), Collections.singleton(label));
      }
    }
    if (onNodes.size() != labels.size()) {
      throw new IOException("node labels name unknown NodeManagers: " + labels.keySet());
    }
    manager.replaceLabelsOnNode(onNodes);
  }

  private void startNodeManager(int index, String hostName, String ip) throws IOException {
    Configuration nmConf = new YarnConfiguration(conf);
    File nmDir = new File(runDir, "yarn/" + hostName);
    // The bind host plus an address naming the host gives the NodeId that host name.
    nmConf.set(YarnConfiguration.NM_BIND_HOST, ip);
    nmConf.set(YarnConfiguration.NM_ADDRESS, hostName + ":0");
    nmConf.set(YarnConfiguration.NM_LOCALIZER_ADDRESS, hostName + ":0");
    nmConf.set(YarnConfiguration.NM_COLLECTOR_SERVICE_ADDRESS, hostName + ":0");
    nmConf.set(YarnConfiguration.NM_LOCAL_DIRS, new File(nmDir, "local").getPath());
    nmConf.set(YarnConfiguration.NM_LOG_DIRS, new File(nmDir, "logs").getPath());
    nmConf.set(YarnConfiguration.NM_RECOVERY_DIR, new File(nmDir, "recovery").getPath());
    NodeManager nodeManager = new NodeManager();
    nodeManager.init(nmConf);
    // Guice's servlet pipeline is JVM-wide: a NodeManager web app started after the
    // RM's replaces it and the RM REST API (/ws/v1/cluster) answers 404. Hadoop's
    // MiniYARNCluster turns NodeManager web servers off for the same reason.
    nodeManager.disableWebServer();
    nodeManager.start();
    if (nodeManager.getServiceState() != Service.STATE.STARTED) {
      throw new IOException("NodeManager " + index + " (" + hostName + ") failed to start",
          nodeManager.getFailureCause());
    }
    nodeManagers.add(nodeManager);
  }

  private void waitForRunningNodes(int expected, long timeoutMs) throws IOException {
    long deadline = System.currentTimeMillis() + timeoutMs;
    while (true) {
      long running = resourceManager.getRMContext().getRMNodes().values().stream()
          .filter(node -> node.getState() == NodeState.RUNNING).count();
      if (running >= expected) {
        return;
      }
      if (System.currentTimeMillis() > deadline) {
        StringBuilder seen = new StringBuilder();
        for (RMNode node : resourceManager.getRMContext().getRMNodes().values()) {
          seen.append(' ').append(node.getNodeID()).append('=').append(node.getState());
        }
        throw new IOException("only " + running + " of " + expected
            + " NodeManagers RUNNING after " + timeoutMs + " ms:" + seen);
      }
      sleepMs(200);
    }
  }

  /** Client configuration, split by file so yarn-default.xml cannot shadow yarn keys. */
  private void writeClientConf() throws IOException {
    confDir.mkdirs();
    Configuration defaults = new YarnConfiguration(new HdfsConfiguration());
    Map<String, String> changed = new TreeMap<>();
    for (Map.Entry<String, String> entry : conf) {
      String key = entry.getKey();
      String value = conf.get(key);
      if (!value.equals(defaults.get(key)) && !key.startsWith("tarn.")) {
        changed.put(key, value);
      }
    }
    writeXml("yarn-site.xml", changed, key -> key.startsWith("yarn."));
    writeXml("hdfs-site.xml", changed, key -> key.startsWith("dfs."));
    writeXml("core-site.xml", changed,
        key -> !key.startsWith("yarn.") && !key.startsWith("dfs."));
  }

  private void writeXml(String name, Map<String, String> entries, Predicate<String> keep)
      throws IOException {
    Configuration out = new Configuration(false);
    entries.forEach((key, value) -> {
      if (keep.test(key)) {
        out.set(key, value);
      }
    });
    File tmp = new File(confDir, name + ".tmp");
    try (OutputStream stream = new FileOutputStream(tmp)) {
      out.writeXml(stream);
    }
    Files.move(tmp.toPath(), new File(confDir, name).toPath(),
        StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
  }

  private void writeClusterProperties(long startupNs) throws IOException {
    Map<String, String> props = new LinkedHashMap<>();
    props.put("default_fs", conf.get(FileSystem.FS_DEFAULT_NAME_KEY));
    props.put("namenode_http", conf.get("dfs.namenode.http-address"));
    props.put("rm_address", conf.get(YarnConfiguration.RM_ADDRESS));
    props.put("rm_webapp", conf.get(YarnConfiguration.RM_WEBAPP_ADDRESS));
    StringBuilder nodes = new StringBuilder();
    for (NodeManager nm : nodeManagers) {
      if (nodes.length() > 0) {
        nodes.append(',');
      }
      nodes.append(nm.getNMContext().getNodeId());
    }
    props.put("nodemanagers", nodes.toString());
    props.put("java_startup_ms", Long.toString(startupNs / 1_000_000));
    File tmp = new File(runDir, "cluster.properties.tmp");
    try (PrintStream out = new PrintStream(tmp, StandardCharsets.UTF_8)) {
      props.forEach((key, value) -> out.println(key + "=" + value));
    }
    Files.move(tmp.toPath(), new File(runDir, "cluster.properties").toPath(),
        StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
  }

  private synchronized void stop() {
    // Each NodeManager kills its containers as it stops, and waits for them (seconds):
    // stop them side by side.
    List<Thread> stopping = new ArrayList<>();
    for (NodeManager nm : nodeManagers) {
      Thread thread = new Thread(() -> stopQuietly(nm), "stop-" + nm.getName());
      thread.start();
      stopping.add(thread);
    }
    for (Thread thread : stopping) {
      try {
        thread.join(60_000);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
    nodeManagers.clear();
    stopQuietly(resourceManager);
    resourceManager = null;
    if (dfs != null) {
      try {
        dfs.shutdown();
      } catch (Throwable t) {
        System.err.println("stopping HDFS: " + t);
      }
      dfs = null;
    }
    new File(runDir, "ready").delete();
    System.out.println("TARN minicluster stopped");
  }

  private static void stopQuietly(Service service) {
    if (service == null) {
      return;
    }
    try {
      service.stop();
    } catch (Throwable t) {
      System.err.println("stopping " + service.getName() + ": " + t);
    }
  }

  private static void sleepMs(long ms) {
    try {
      Thread.sleep(ms);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new IllegalStateException(e);
    }
  }
}
