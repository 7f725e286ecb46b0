"""The Hadoop client configuration as `tarn submit` and the node-agent read it: properties,
and the WebHDFS URL(s) of an hdfs:// authority."""
from tarn_shared.hadoop_conf import kerberos_enabled, read_hadoop_conf, webhdfs_urls_from_conf


def site(props):
    body = "".join(f"<property><name>{k}</name><value>{v}</value></property>" for k, v in props.items())
    return f"<?xml version='1.0'?><configuration>{body}</configuration>"


def test_core_and_hdfs_site_are_read_and_a_broken_file_is_skipped(tmp_path):
    (tmp_path / "core-site.xml").write_text(site({"fs.defaultFS": "hdfs://nn:8020",
                                                  "hadoop.security.authentication": "kerberos"}))
    (tmp_path / "hdfs-site.xml").write_text("<configuration><property>")
    conf = read_hadoop_conf(str(tmp_path))
    assert conf == {"fs.defaultFS": "hdfs://nn:8020", "hadoop.security.authentication": "kerberos"}
    assert kerberos_enabled(conf) and not kerberos_enabled({})
    assert read_hadoop_conf(None) == {} and read_hadoop_conf(str(tmp_path / "missing")) == {}


def test_a_single_namenode_wildcard_address_takes_the_authoritys_host():
    conf = {"dfs.namenode.http-address": "0.0.0.0:9870"}
    assert webhdfs_urls_from_conf(conf, "nn1.example:8020") == "http://nn1.example:9870"
    assert webhdfs_urls_from_conf({"dfs.namenode.http-address": "127.0.0.1:41234"}, "") == "http://127.0.0.1:41234"


def test_an_ha_nameservice_lists_every_namenode_and_https_only_uses_https():
    conf = {"dfs.nameservices": "prod", "dfs.ha.namenodes.prod": "nn1, nn2",
            "dfs.namenode.https-address.prod.nn1": "a:9871", "dfs.namenode.https-address.prod.nn2": "b:9871",
            "dfs.http.policy": "HTTPS_ONLY"}
    assert webhdfs_urls_from_conf(conf, "prod") == "https://a:9871;https://b:9871"
    assert webhdfs_urls_from_conf(conf, "") == "https://a:9871;https://b:9871"  # the default nameservice


def test_no_address_means_no_url():
    assert webhdfs_urls_from_conf({}, "nn:8020") is None
