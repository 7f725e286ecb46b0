package io.tarn.knox.ha;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.state.ConnectionState;
import org.apache.curator.retry.ExponentialBackoffRetry;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.WatchedEvent;
import org.apache.zookeeper.Watcher;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * The live Triton instances of one ZooKeeper namespace, kept current by watches.
 *
 * <p>Reads {@code <namespace>/instances} when that child exists (the seeds' layout, where the
 * topology names {@code /services/triton}), else the namespace's own children. Every watch
 * event, reconnect and a slow periodic tick schedule one full re-read on a single background
 * thread; ZooKeeper's event thread only sets a flag. A failed read keeps the last list: losing
 * ZooKeeper must not empty the gateway.
 *
 * <p>Knox builds a new URL manager on every topology (re)deployment and never closes the old
 * one, so directories are shared per (ensemble, namespace) instead of opened per manager.
 */
public final class InstanceDirectory implements AutoCloseable {
  static final String INSTANCES_CHILD = "instances";
  private static final Logger LOG = LoggerFactory.getLogger(InstanceDirectory.class);
  private static final Map<String, InstanceDirectory> SHARED = new ConcurrentHashMap<>();
  private static final long RETRY_DELAY_MS = 1000;
  // A safety net for a missed watch; watches do the real work.
  private static final long PERIODIC_REFRESH_MS = 30_000;
  private static final int SESSION_TIMEOUT_MS = 30_000;
  private static final int CONNECTION_TIMEOUT_MS = 15_000;

  private final String key;
  private final String namespace;
  private final CuratorFramework client;
  private final ScheduledExecutorService worker;
  private final AtomicBoolean refreshQueued = new AtomicBoolean();
  private final CountDownLatch firstRead = new CountDownLatch(1);
  private final Watcher watcher = this::onWatchEvent;
  private volatile List<String> urls = Collections.emptyList();
  /** Each URL's models as its znode lists them (null: not listed, any model). */
  private volatile Map<String, Set<String>> models = Collections.emptyMap();

  private InstanceDirectory(String key, String ensemble, String namespace) {
    this.key = key;
    this.namespace = namespace;
    this.client = CuratorFrameworkFactory.builder()
        .connectString(ensemble)
        .sessionTimeoutMs(SESSION_TIMEOUT_MS)
        .connectionTimeoutMs(CONNECTION_TIMEOUT_MS)
        .retryPolicy(new ExponentialBackoffRetry(500, 10))
        .build();
    this.worker = Executors.newSingleThreadScheduledExecutor(runnable -> {
      Thread thread = new Thread(runnable, "tarn-knox-zk" + namespace.replace('/', '-'));
      thread.setDaemon(true);
      return thread;
    });
  }

  /** The directory for this ensemble and namespace, started on first use. */
  public static InstanceDirectory shared(String ensemble, String namespace) {
    String ns = normaliseNamespace(namespace);
    return SHARED.computeIfAbsent(ensemble.trim() + "|" + ns, key -> {
      InstanceDirectory directory = new InstanceDirectory(key, ensemble.trim(), ns);
      directory.start();
      return directory;
    });
  }

  static String normaliseNamespace(String namespace) {
    String ns = namespace == null ? "" : namespace.trim();
    while (ns.endsWith("/")) {
      ns = ns.substring(0, ns.length() - 1);
    }
    if (ns.isEmpty()) {
      return TritonURLManager.DEFAULT_NAMESPACE;
    }
    return ns.startsWith("/") ? ns : "/" + ns;
  }

  private void start() {
    client.getConnectionStateListenable().addListener((c, state) -> {
      // After a lost session the watches are gone: read (and re-arm) everything again.
      if (state == ConnectionState.CONNECTED || state == ConnectionState.RECONNECTED) {
        scheduleRefresh(0);
      }
    });
    client.start();
    worker.scheduleWithFixedDelay(() -> scheduleRefresh(0), PERIODIC_REFRESH_MS, PERIODIC_REFRESH_MS,
        TimeUnit.MILLISECONDS);
    scheduleRefresh(0);
  }

  /** The live instances' base URLs, sorted; never null. */
  public List<String> urls() {
    return urls;
  }

  /** The live instances whose znodes list {@code model}, sorted; never null. */
  public List<String> holders(String model) {
    return ModelRouting.holders(urls, models, model);
  }

  public String namespace() {
    return namespace;
  }

  /** Waits (bounded) for the first complete read, so a fresh gateway does not start empty. */
  public boolean awaitFirstRead(long timeoutMs) {
    try {
      return firstRead.await(timeoutMs, TimeUnit.MILLISECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return false;
    }
  }

  /** Asks for a re-read soon (e.g. after Knox saw an instance fail). */
  public void refreshSoon() {
    scheduleRefresh(0);
  }

  private void onWatchEvent(WatchedEvent event) {
    if (event.getType() != Watcher.Event.EventType.None) {
      scheduleRefresh(0);
    }
  }

  private void scheduleRefresh(long delayMs) {
    if (refreshQueued.compareAndSet(false, true)) {
      try {
        worker.schedule(this::refresh, delayMs, TimeUnit.MILLISECONDS);
      } catch (java.util.concurrent.RejectedExecutionException closed) {
        refreshQueued.set(false);
      }
    }
  }

  private void refresh() {
    refreshQueued.set(false);
    try {
      Map<String, Set<String>> read = read();
      List<String> next = new ArrayList<>(read.keySet());
      Collections.sort(next);
      models = Collections.unmodifiableMap(read);
      if (!next.equals(urls)) {
        urls = Collections.unmodifiableList(next);
        LOG.info("TRITON instances under {}: {}", namespace, next);
      }
      firstRead.countDown();
    } catch (Exception e) {
      LOG.warn("Cannot read TRITON instances under {} ({}); keeping the last {} and retrying",
          namespace, e.toString(), urls.size());
      scheduleRefresh(RETRY_DELAY_MS);
    }
  }

  private Map<String, Set<String>> read() throws Exception {
    String nested = namespace + "/" + INSTANCES_CHILD;
    boolean useNested = client.checkExists().usingWatcher(watcher).forPath(nested) != null;
    if (!useNested) {
      client.checkExists().usingWatcher(watcher).forPath(namespace); // to notice the namespace appear
    }
    String parent = useNested ? nested : namespace;
    List<String> names;
    try {
      names = new ArrayList<>(client.getChildren().usingWatcher(watcher).forPath(parent));
    } catch (KeeperException.NoNodeException e) {
      return Collections.emptyMap();
    }
    Collections.sort(names);
    Map<String, Set<String>> found = new LinkedHashMap<>();
    for (String name : names) {
      byte[] data;
      try {
        data = client.getData().usingWatcher(watcher).forPath(parent + "/" + name);
      } catch (KeeperException.NoNodeException e) {
        continue; // went away while we read
      }
      String url = InstanceRecord.baseUrl(name, data);
      if (url == null) {
        LOG.debug("Skipping znode {}/{}: no instance URL in it", parent, name);
      } else if (!found.containsKey(url)) {
        found.put(url, InstanceRecord.models(data));
      }
    }
    return found;
  }

  /** Stops watching; the next {@link #shared} call opens a fresh directory. */
  @Override
  public void close() {
    SHARED.remove(key, this);
    worker.shutdownNow();
    client.close();
  }
}
