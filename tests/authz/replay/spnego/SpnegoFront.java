import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.util.EnumSet;

import javax.servlet.DispatcherType;
import javax.servlet.http.HttpServlet;
import javax.servlet.http.HttpServletRequest;
import javax.servlet.http.HttpServletResponse;

import org.apache.hadoop.security.authentication.server.AuthenticationFilter;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.servlet.FilterHolder;
import org.eclipse.jetty.servlet.ServletContextHandler;
import org.eclipse.jetty.servlet.ServletHolder;

/**
 * Ranger Admin's SPNEGO in front of the replay server (tests/authz/replay/server.py): Hadoop's
 * AuthenticationFilter of type kerberos, which Ranger Admin's RangerKRBAuthenticationFilter
 * extends, on the secure download endpoints; every request then goes to the replay with the
 * authenticated short name in X-Ranger-Remote-User (the replay checks it as Ranger checks
 * policy.download.auth.users). Args: port backendUrl principal keytab.
 */
public class SpnegoFront {
    static final String[] SECURE = {"/service/plugins/secure/*", "/service/roles/secure/*", "/service/xusers/secure/*"};

    public static void main(String[] args) throws Exception {
        int port = Integer.parseInt(args[0]);
        String backend = args[1];
        Server server = new Server(new InetSocketAddress("127.0.0.1", port));
        ServletContextHandler context = new ServletContextHandler();
        FilterHolder spnego = new FilterHolder(AuthenticationFilter.class);
        spnego.setInitParameter(AuthenticationFilter.AUTH_TYPE, "kerberos");
        spnego.setInitParameter("kerberos.principal", args[2]);
        spnego.setInitParameter("kerberos.keytab", args[3]);
        spnego.setInitParameter("kerberos.name.rules", "DEFAULT");
        for (String path : SECURE) {
            context.addFilter(spnego, path, EnumSet.of(DispatcherType.REQUEST));
        }
        context.addServlet(new ServletHolder(new Forward(backend)), "/*");
        server.setHandler(context);
        server.start();
        System.out.println("SpnegoFront listening on " + port);
        server.join();
    }

    static class Forward extends HttpServlet {
        private final String backend;
        private final HttpClient http = HttpClient.newHttpClient();

        Forward(String backend) {
            this.backend = backend;
        }

        @Override
        protected void doGet(HttpServletRequest request, HttpServletResponse response) throws IOException {
            String query = request.getQueryString();
            HttpRequest.Builder forward = HttpRequest.newBuilder(
                    URI.create(backend + request.getRequestURI() + (query == null ? "" : "?" + query))).GET();
            if (request.getRemoteUser() != null) {
                forward.header("X-Ranger-Remote-User", request.getRemoteUser());
            }
            try {
                HttpResponse<InputStream> answer = http.send(forward.build(), HttpResponse.BodyHandlers.ofInputStream());
                response.setStatus(answer.statusCode());
                answer.headers().firstValue("content-type").ifPresent(response::setContentType);
                try (InputStream in = answer.body(); OutputStream out = response.getOutputStream()) {
                    in.transferTo(out);
                }
            } catch (InterruptedException exc) {
                Thread.currentThread().interrupt();
                response.sendError(502, "replay unreachable");
            }
        }
    }
}
