package io.tarn.knox.authz;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNotEquals;
import static org.junit.Assert.assertNull;

import java.util.Arrays;
import java.util.Collections;
import java.util.concurrent.atomic.AtomicLong;

import org.junit.Test;

public class DecisionCacheTest {
  private final AtomicLong now = new AtomicLong();

  @Test
  public void decisionsLastTheirTtlOnly() {
    DecisionCache cache = new DecisionCache(2000, 10, now::get);
    String key = DecisionCache.key("alice", Collections.<String>emptyList(), "infer", "add_sub");
    cache.put(key, true);
    now.set(1_999_000_000L);
    assertEquals(Boolean.TRUE, cache.get(key));
    now.set(2_000_000_000L);
    assertNull(cache.get(key));
  }

  @Test
  public void groupsArePartOfTheKeyInAnyOrder() {
    assertEquals(DecisionCache.key("u", Arrays.asList("b", "a"), "infer", "m"),
        DecisionCache.key("u", Arrays.asList("a", "b"), "infer", "m"));
    assertNotEquals(DecisionCache.key("u", Collections.singletonList("a"), "infer", "m"),
        DecisionCache.key("u", Collections.<String>emptyList(), "infer", "m"));
  }

  @Test
  public void aZeroTtlCachesNothing() {
    DecisionCache cache = new DecisionCache(0, 10, now::get);
    cache.put("k", false);
    assertNull(cache.get("k"));
  }

  @Test
  public void aFullCacheStartsOver() {
    DecisionCache cache = new DecisionCache(1000, 2, now::get);
    cache.put("a", true);
    cache.put("b", true);
    cache.put("c", false);
    assertNull(cache.get("a"));
    assertEquals(Boolean.FALSE, cache.get("c"));
  }
}
