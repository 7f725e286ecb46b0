package io.tarn.knox.authz;

import javax.servlet.ServletOutputStream;
import javax.servlet.WriteListener;
import javax.servlet.http.HttpServletResponse;
import javax.servlet.http.HttpServletResponseWrapper;
import java.io.ByteArrayOutputStream;
import java.io.OutputStreamWriter;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.util.Locale;

/** Holds back what the dispatch writes, so the body can be filtered before the client sees it. */
final class BufferedResponse extends HttpServletResponseWrapper {
  private final ByteArrayOutputStream body = new ByteArrayOutputStream();
  private final ServletOutputStream stream = new ServletOutputStream() {
    @Override
    public boolean isReady() {
      return true;
    }

    @Override
    public void setWriteListener(WriteListener listener) {
      throw new UnsupportedOperationException("a buffered response is written synchronously");
    }

    @Override
    public void write(int b) {
      body.write(b);
    }

    @Override
    public void write(byte[] b, int off, int len) {
      body.write(b, off, len);
    }
  };
  private PrintWriter writer;
  private int status = SC_OK;
  private boolean errorSent;
  private String contentEncoding;

  BufferedResponse(HttpServletResponse response) {
    super(response);
  }

  @Override
  public ServletOutputStream getOutputStream() {
    return stream;
  }

  @Override
  public PrintWriter getWriter() {
    if (writer == null) {
      writer = new PrintWriter(new OutputStreamWriter(body, StandardCharsets.UTF_8));
    }
    return writer;
  }

  @Override
  public void setStatus(int sc) {
    status = sc;
    super.setStatus(sc);
  }

  @Override
  @SuppressWarnings("deprecation")
  public void setStatus(int sc, String message) {
    status = sc;
    super.setStatus(sc, message);
  }

  @Override
  public void sendError(int sc) throws java.io.IOException {
    status = sc;
    errorSent = true;
    super.sendError(sc);
  }

  @Override
  public void sendError(int sc, String message) throws java.io.IOException {
    status = sc;
    errorSent = true;
    super.sendError(sc, message);
  }

  @Override
  public int getStatus() {
    return status;
  }

  // The length and encoding are the filtered body's, set when it is written.
  @Override
  public void setContentLength(int len) {
  }

  @Override
  public void setContentLengthLong(long len) {
  }

  @Override
  public void setHeader(String name, String value) {
    if (!holdBack(name, value)) {
      super.setHeader(name, value);
    }
  }

  @Override
  public void addHeader(String name, String value) {
    if (!holdBack(name, value)) {
      super.addHeader(name, value);
    }
  }

  @Override
  public void setIntHeader(String name, int value) {
    if (!holdBack(name, Integer.toString(value))) {
      super.setIntHeader(name, value);
    }
  }

  @Override
  public void addIntHeader(String name, int value) {
    if (!holdBack(name, Integer.toString(value))) {
      super.addIntHeader(name, value);
    }
  }

  private boolean holdBack(String name, String value) {
    String header = name.toLowerCase(Locale.ROOT);
    if (header.equals("content-encoding")) {
      contentEncoding = value;
      return true;
    }
    return header.equals("content-length") || header.equals("transfer-encoding");
  }

  @Override
  public void flushBuffer() {
  }

  @Override
  public void resetBuffer() {
    body.reset();
  }

  boolean errorSent() {
    return errorSent;
  }

  /** True when the body is plain bytes (not gzip or the like) and can be read. */
  boolean identityEncoded() {
    return contentEncoding == null || contentEncoding.trim().equalsIgnoreCase("identity");
  }

  String contentEncoding() {
    return contentEncoding;
  }

  byte[] body() {
    if (writer != null) {
      writer.flush();
    }
    return body.toByteArray();
  }
}
