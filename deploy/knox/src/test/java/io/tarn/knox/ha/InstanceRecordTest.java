package io.tarn.knox.ha;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashSet;
import java.util.List;

import org.junit.Test;

public class InstanceRecordTest {
  private static byte[] json(String text) {
    return text.getBytes(StandardCharsets.UTF_8);
  }

  @Test
  public void gatewaySyncRecordGivesItsUrl() {
    byte[] data = json("{\"app_id\":\"application_1_0001\",\"container_id\":\"c1\",\"host\":\"node1\","
        + "\"models\":[\"identity\"],\"port\":8000,\"url\":\"http://node1:8000\"}");
    assertEquals("http://node1:8000", InstanceRecord.baseUrl("node1:8000", data));
  }

  @Test
  public void theRecordsModelsAreWhatItHoldsAndNoListMeansAnyModel() {
    byte[] listed = json("{\"url\":\"http://node1:8000\",\"models\":[\"identity\",\"add_sub\",7]}");
    assertEquals(new HashSet<>(Arrays.asList("add_sub", "identity")), InstanceRecord.models(listed));
    assertTrue(InstanceRecord.models(json("{\"url\":\"http://node1:8000\",\"models\":[]}")).isEmpty());
    assertNull(InstanceRecord.models(json("{\"url\":\"http://node1:8000\"}")));
    assertNull(InstanceRecord.models(json("not json")));
    assertNull(InstanceRecord.models(null));
  }

  @Test
  public void urlIsReducedToSchemeHostAndPort() {
    assertEquals("http://node1:8000", InstanceRecord.baseUrl("x", json("{\"url\":\"HTTP://node1:8000/\"}")));
    assertEquals("https://node1:443", InstanceRecord.baseUrl("x", json("{\"url\":\"https://node1\"}")));
  }

  @Test
  public void hostAndPortServeWhenUrlIsMissing() {
    assertEquals("http://node2:9000", InstanceRecord.baseUrl("x", json("{\"host\":\"node2\",\"port\":9000}")));
  }

  @Test
  public void nodeNameServesWhenThereIsNoData() {
    assertEquals("http://node3:8000", InstanceRecord.baseUrl("node3:8000", new byte[0]));
  }

  @Test
  public void nodesThatDescribeNoInstanceAreSkipped() {
    assertNull(InstanceRecord.baseUrl("leader", json("not json")));
    assertNull(InstanceRecord.baseUrl("node:1", json("[1,2]")));
    assertNull(InstanceRecord.baseUrl("lock-0001", new byte[0]));
    assertNull(InstanceRecord.baseUrl("x", json("{\"url\":\"ftp://node:21\"}")));
  }

  @Test
  public void sameOriginComparesTheDispatchedUriWithTheInstance() {
    assertTrue(InstanceRecord.sameOrigin("http://node1:8000", "http://node1:8000/v2/models/m/infer?x=1"));
    assertFalse(InstanceRecord.sameOrigin("http://node1:8000", "http://node1:8001/v2/models/m/infer"));
  }

  @Test
  public void rotationWalksTheListAndPassesOverFailedInstances() {
    List<String> urls = Arrays.asList("a", "b", "c");
    assertEquals("a", Rotation.pick(urls, 0, Collections.<String>emptySet()));
    assertEquals("c", Rotation.pick(urls, 5, Collections.<String>emptySet()));
    assertEquals("c", Rotation.pick(urls, 1, new HashSet<>(Collections.singletonList("b"))));
    assertEquals("b", Rotation.pick(urls, 1, new HashSet<>(urls)));
    assertNull(Rotation.pick(Collections.<String>emptyList(), 3, Collections.<String>emptySet()));
  }
}
