package io.tarn.knox.ha;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Per-model routing ({@code --placement per-model}, where an instance holds only some models):
 * a request for model m goes only to instances whose znodes list m, as HAProxy's model slot
 * backends do. Pure.
 */
final class ModelRouting {
  private ModelRouting() {
  }

  /** The URLs whose instances hold {@code model}; an instance whose record lists no models holds any. */
  static List<String> holders(List<String> urls, Map<String, Set<String>> models, String model) {
    List<String> out = new ArrayList<>();
    for (String url : urls) {
      Set<String> held = models.get(url);
      if (held == null || held.contains(model)) {
        out.add(url);
      }
    }
    return Collections.unmodifiableList(out);
  }

  /**
   * Where a request Knox sent to {@code chosen} should go: there when it holds the model (or no
   * instance does: Triton then answers "unknown model", as HAProxy's main backend would), else
   * the holder at {@code cursor}, round robin.
   */
  static String target(String chosen, List<String> holders, int cursor) {
    if (holders.isEmpty() || holders.contains(chosen)) {
      return chosen;
    }
    return holders.get(Math.floorMod(cursor, holders.size()));
  }
}
