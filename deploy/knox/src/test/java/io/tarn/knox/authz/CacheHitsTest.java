package io.tarn.knox.authz;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import java.util.Collections;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;

import org.junit.Test;

public class CacheHitsTest {
  private final AtomicLong now = new AtomicLong(1_000);

  @Test
  public void hitsAreCountedPerUserDecisionAndClientWithTheirTimes() {
    CacheHits hits = new CacheHits(100, now::get);
    hits.hit("alice", Collections.<String>emptyList(), "infer", "m", true, "10.0.0.1");
    now.set(1_250);
    hits.hit("alice", Collections.<String>emptyList(), "infer", "m", true, "10.0.0.1");
    hits.hit("alice", Collections.<String>emptyList(), "infer", "m", true, "10.0.0.2");
    hits.hit("alice", Collections.<String>emptyList(), "infer", "m", false, "10.0.0.1");
    List<CacheHits.Hits> drained = hits.drain();
    assertEquals(3, drained.size());
    long total = 0;
    for (CacheHits.Hits h : drained) {
      total += h.count();
      if (h.count() == 2) {
        assertEquals(1_000, h.firstMs);
        assertEquals(1_250, h.lastMs);
      }
    }
    assertEquals(4, total);
    assertTrue(hits.drain().isEmpty()); // counted once only
  }

  @Test
  public void undeliveredCountsComeBackAddedToNewHits() {
    CacheHits hits = new CacheHits(100, now::get);
    hits.hit("bob", Collections.singletonList("g"), "metadata", "m", true, "10.0.0.1");
    List<CacheHits.Hits> undelivered = hits.drain();
    now.set(2_000);
    hits.hit("bob", Collections.singletonList("g"), "metadata", "m", true, "10.0.0.1");
    hits.restore(undelivered);
    List<CacheHits.Hits> again = hits.drain();
    assertEquals(1, again.size());
    assertEquals(2, again.get(0).count());
    assertEquals(1_000, again.get(0).firstMs);
    assertEquals(2_000, again.get(0).lastMs);
  }

  @Test
  public void beyondMaxEntriesHitsAreCountedAsDropped() {
    CacheHits hits = new CacheHits(1, now::get);
    hits.hit("a", Collections.<String>emptyList(), "infer", "m", true, "c");
    hits.hit("b", Collections.<String>emptyList(), "infer", "m", true, "c");
    assertEquals(1, hits.takeDropped());
    assertEquals(0, hits.takeDropped());
  }

  @Test
  public void concurrentHitsAreNeitherLostNorCountedTwiceAcrossDrains() throws InterruptedException {
    CacheHits hits = new CacheHits(100, now::get);
    int threads = 4;
    int each = 20_000;
    Thread[] workers = new Thread[threads];
    for (int t = 0; t < threads; t++) {
      workers[t] = new Thread(() -> {
        for (int i = 0; i < each; i++) {
          hits.hit("u", Collections.<String>emptyList(), "infer", "m", true, "c");
        }
      });
      workers[t].start();
    }
    long total = 0;
    boolean running = true;
    while (running) {
      running = false;
      for (Thread worker : workers) {
        running |= worker.isAlive();
      }
      for (CacheHits.Hits h : hits.drain()) {
        total += h.count();
      }
    }
    for (Thread worker : workers) {
      worker.join();
    }
    for (CacheHits.Hits h : hits.drain()) {
      total += h.count();
    }
    assertEquals((long) threads * each, total);
  }
}
