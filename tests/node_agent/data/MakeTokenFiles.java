// Writes Hadoop token storage files with Hadoop's own Credentials class, and the
// encodeToUrlString() of each token, for tests/node_agent/test_tokens.py.
// Run: java -cp 'deploy/local/hadoop/lib/*' tests/node_agent/data/MakeTokenFiles.java OUTDIR
import java.io.DataOutputStream;
import java.io.FileOutputStream;
import java.io.FileWriter;
import java.nio.charset.StandardCharsets;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.io.Text;
import org.apache.hadoop.security.Credentials;
import org.apache.hadoop.security.token.Token;
import org.apache.hadoop.security.token.TokenIdentifier;

public class MakeTokenFiles {
  public static void main(String[] args) throws Exception {
    String out = args[0];
    Credentials creds = new Credentials();
    byte[] id = new byte[300];  // long enough for a multi-byte vint length
    for (int i = 0; i < id.length; i++) id[i] = (byte) (i * 7);
    Token<TokenIdentifier> hdfs = new Token<>(id, "s3cr3t-password".getBytes(StandardCharsets.UTF_8),
        new Text("HDFS_DELEGATION_TOKEN"), new Text("127.0.0.1:8020"));
    Token<TokenIdentifier> rm = new Token<>(new byte[] {1, 2, 3}, new byte[] {9, 8},
        new Text("RM_DELEGATION_TOKEN"), new Text("127.0.0.1:8032"));
    creds.addToken(new Text("rm"), rm);
    creds.addToken(new Text("hdfs"), hdfs);
    creds.addSecretKey(new Text("a.secret"), new byte[] {42, 43});
    creds.writeTokenStorageFile(new Path("file://" + out + "/tokens-writable.hdts"), new Configuration());
    try (DataOutputStream os = new DataOutputStream(new FileOutputStream(out + "/tokens-protobuf.hdts"))) {
      creds.writeTokenStorageToStream(os, Credentials.SerializedFormat.PROTOBUF);
    }
    try (FileWriter w = new FileWriter(out + "/tokens-expected.txt")) {
      w.write("hdfs " + hdfs.encodeToUrlString() + "\n");
      w.write("rm " + rm.encodeToUrlString() + "\n");
    }
  }
}
