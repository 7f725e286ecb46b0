"""Where a model repository or a credential file is: the one parser `tarn submit` and the
node-agent share."""
import pytest

from tarn_shared.locations import parse_credential_location, parse_location


def test_hdfs_uris_and_absolute_paths_are_understood():
    assert parse_location("hdfs://nn:8020/models/").hdfs_path == "/models"
    assert parse_location("hdfs://nn:8020/models").authority == "nn:8020"
    assert parse_location("jceks://hdfs@nn:8020/s/x.jceks").hdfs_path == "/s/x.jceks"
    assert parse_location("/mnt/nfs/models").local_path == "/mnt/nfs/models"


@pytest.mark.parametrize("value", ["hdfs://nn/models/../etc", "/mnt/../etc", "models", "s3://b/m", "",
                                   "hdfs://nn/a\nb", "file:///etc"])
def test_unsafe_or_unknown_locations_are_refused(value):
    with pytest.raises(ValueError):
        parse_location(value)


def test_a_credential_file_must_be_on_hdfs():
    assert parse_credential_location("jceks://hdfs@nn:8020/s/x.jceks").authority == "nn:8020"
    with pytest.raises(ValueError, match="must be on HDFS"):
        parse_credential_location("/local/file.jceks")
