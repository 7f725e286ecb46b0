package io.tarn.knox.ha;

import java.util.List;
import java.util.Set;

/** Round robin over the live instances, passing over those that just failed. Pure. */
final class Rotation {
  private Rotation() {
  }

  /**
   * The URL at {@code cursor}, or the next one after it that is not {@code failed}; when every
   * instance failed recently, the one at the cursor (trying beats refusing). Null when none.
   */
  static String pick(List<String> urls, int cursor, Set<String> failed) {
    int count = urls.size();
    if (count == 0) {
      return null;
    }
    int start = Math.floorMod(cursor, count);
    for (int step = 0; step < count; step++) {
      String url = urls.get((start + step) % count);
      if (!failed.contains(url)) {
        return url;
      }
    }
    return urls.get(start);
  }
}
