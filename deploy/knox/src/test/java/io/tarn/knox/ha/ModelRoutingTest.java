package io.tarn.knox.ha;

import static org.junit.Assert.assertEquals;

import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

import org.junit.Test;

public class ModelRoutingTest {
  private static final String A = "http://node1:8000";
  private static final String B = "http://node2:8000";
  private static final String C = "http://node3:8000";

  private static Set<String> set(String... models) {
    return new HashSet<>(Arrays.asList(models));
  }

  @Test
  public void onlyInstancesListingTheModelHoldItAndAnUnlistedRecordHoldsAny() {
    Map<String, Set<String>> models = new HashMap<>();
    models.put(A, set("identity"));
    models.put(B, set("add_sub", "identity"));
    models.put(C, null);
    List<String> urls = Arrays.asList(A, B, C);
    assertEquals(Arrays.asList(A, B, C), ModelRouting.holders(urls, models, "identity"));
    assertEquals(Arrays.asList(B, C), ModelRouting.holders(urls, models, "add_sub"));
    models.put(C, set());
    assertEquals(Collections.emptyList(), ModelRouting.holders(urls, models, "bert"));
  }

  @Test
  public void aRequestKnoxSentToAnInstanceWithoutTheModelGoesToTheHoldersInTurn() {
    List<String> holders = Arrays.asList(B, C);
    assertEquals(B, ModelRouting.target(A, holders, 0));
    assertEquals(C, ModelRouting.target(A, holders, 1));
    assertEquals(B, ModelRouting.target(A, holders, -2));
  }

  @Test
  public void aHolderKeepsKnoxsChoiceAndNoHolderLeavesItToo() {
    assertEquals(C, ModelRouting.target(C, Arrays.asList(B, C), 0));
    assertEquals(A, ModelRouting.target(A, Collections.<String>emptyList(), 3));
  }
}
