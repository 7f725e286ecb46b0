package io.tarn.knox.authz;

import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.LongSupplier;

/**
 * Decisions served from the {@link DecisionCache}, counted per (user, groups, action, model,
 * decision, client address) until {@link #drain} hands them to the audit (authz's
 * {@code /audit/summary}, Ranger's audit summarisation). A hit costs a map lookup and an
 * increment under the entry's own lock; counts not delivered go back with {@link #restore}.
 */
public class CacheHits {
  private final Map<String, Hits> entries = new ConcurrentHashMap<>();
  private final LongSupplier clockMillis;
  private final int maxEntries;
  private long dropped;

  public CacheHits(int maxEntries, LongSupplier clockMillis) {
    this.maxEntries = maxEntries;
    this.clockMillis = clockMillis;
  }

  public void hit(String user, Collection<String> groups, String action, String model, boolean allowed,
                  String client) {
    String key = DecisionCache.key(user, groups, action, model) + '\0' + allowed + '\0' + client;
    long now = clockMillis.getAsLong();
    while (true) {
      Hits hits = entries.get(key);
      if (hits == null) {
        if (entries.size() >= maxEntries) {
          synchronized (this) {
            dropped++;
          }
          return;
        }
        Hits fresh = new Hits(user, new ArrayList<>(groups), action, model, allowed, client);
        hits = entries.putIfAbsent(key, fresh);
        if (hits == null) {
          hits = fresh;
        }
      }
      synchronized (hits) {
        if (!hits.retired) { // else drain took it out of the map: start a new entry
          if (hits.count == 0) {
            hits.firstMs = now;
          }
          hits.count++;
          hits.lastMs = now;
          return;
        }
      }
    }
  }

  /** The counts since the last drain (each a copy); entries idle since the last drain are retired. */
  public List<Hits> drain() {
    List<Hits> out = new ArrayList<>();
    for (Map.Entry<String, Hits> entry : entries.entrySet()) {
      Hits hits = entry.getValue();
      synchronized (hits) {
        if (hits.count == 0) {
          hits.retired = true;
          entries.remove(entry.getKey(), hits);
          continue;
        }
        out.add(hits.copy());
        hits.count = 0;
      }
    }
    return out;
  }

  /** Counts {@link #drain} handed out that authz did not take: counted again next time. */
  public void restore(List<Hits> undelivered) {
    for (Hits old : undelivered) {
      String key = DecisionCache.key(old.user, old.groups, old.action, old.model) + '\0' + old.allowed + '\0'
          + old.client;
      while (true) {
        Hits hits = entries.computeIfAbsent(key, k -> new Hits(old.user, old.groups, old.action, old.model,
            old.allowed, old.client));
        synchronized (hits) {
          if (hits.retired) {
            continue;
          }
          hits.lastMs = hits.count == 0 ? old.lastMs : hits.lastMs;
          hits.firstMs = old.firstMs;
          hits.count += old.count;
          break;
        }
      }
    }
  }

  /** Hits not counted since the last call (more than maxEntries distinct entries waiting). */
  public synchronized long takeDropped() {
    long n = dropped;
    dropped = 0;
    return n;
  }

  /** One (user, groups, action, model, decision, client) and its hits. */
  public static final class Hits {
    final String user;
    final List<String> groups;
    final String action;
    final String model;
    final boolean allowed;
    final String client;
    long count;
    long firstMs;
    long lastMs;
    boolean retired;

    Hits(String user, List<String> groups, String action, String model, boolean allowed, String client) {
      this.user = user;
      this.groups = groups;
      this.action = action;
      this.model = model;
      this.allowed = allowed;
      this.client = client;
    }

    Hits copy() {
      Hits copy = new Hits(user, groups, action, model, allowed, client);
      copy.count = count;
      copy.firstMs = firstMs;
      copy.lastMs = lastMs;
      return copy;
    }

    public long count() {
      return count;
    }
  }
}
