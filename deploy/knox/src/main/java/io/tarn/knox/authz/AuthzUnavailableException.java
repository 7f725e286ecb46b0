package io.tarn.knox.authz;

/** tarn-authz gave no decision (unreachable, timed out, or answered something unusable). */
public class AuthzUnavailableException extends Exception {
  private static final long serialVersionUID = 1L;

  public AuthzUnavailableException(String message) {
    super(message);
  }

  public AuthzUnavailableException(String message, Throwable cause) {
    super(message, cause);
  }
}
