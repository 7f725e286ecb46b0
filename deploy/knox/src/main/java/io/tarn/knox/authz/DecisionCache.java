package io.tarn.knox.authz;

import java.util.Collection;
import java.util.Map;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.LongSupplier;

/**
 * Recent decisions by (user, groups, action, model), kept {@code ttlMs}; only real answers
 * are kept, never "authz unavailable". Full, it starts over (as the HAProxy action does).
 */
public class DecisionCache {
  private final long ttlNanos;
  private final int maxEntries;
  private final LongSupplier clockNanos;
  private final Map<String, Entry> entries = new ConcurrentHashMap<>();

  public DecisionCache(long ttlMs, int maxEntries, LongSupplier clockNanos) {
    this.ttlNanos = ttlMs * 1_000_000L;
    this.maxEntries = maxEntries;
    this.clockNanos = clockNanos;
  }

  public static String key(String user, Collection<String> groups, String action, String model) {
    return user + '\0' + String.join(",", new TreeSet<>(groups)) + '\0' + action + '\0' + model;
  }

  /** The cached decision, or null when there is none still fresh. */
  public Boolean get(String key) {
    Entry entry = entries.get(key);
    if (entry == null) {
      return null;
    }
    if (clockNanos.getAsLong() - entry.expiresNanos >= 0) {
      entries.remove(key, entry);
      return null;
    }
    return entry.allowed;
  }

  public void put(String key, boolean allowed) {
    if (ttlNanos <= 0) {
      return;
    }
    if (entries.size() >= maxEntries) {
      entries.clear();
    }
    entries.put(key, new Entry(allowed, clockNanos.getAsLong() + ttlNanos));
  }

  private static final class Entry {
    final boolean allowed;
    final long expiresNanos;

    Entry(boolean allowed, long expiresNanos) {
      this.allowed = allowed;
      this.expiresNanos = expiresNanos;
    }
  }
}
