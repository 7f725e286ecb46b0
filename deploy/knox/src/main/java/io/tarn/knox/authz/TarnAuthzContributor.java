package io.tarn.knox.authz;

import org.apache.knox.gateway.deploy.DeploymentContext;
import org.apache.knox.gateway.deploy.ProviderDeploymentContributorBase;
import org.apache.knox.gateway.descriptor.FilterParamDescriptor;
import org.apache.knox.gateway.descriptor.ResourceDescriptor;
import org.apache.knox.gateway.topology.Provider;
import org.apache.knox.gateway.topology.Service;

import java.util.ArrayList;
import java.util.List;

/**
 * The authorization provider {@code TarnAuthz}: puts {@link TarnAuthzFilter} where the
 * service's policies place the authorization role (after authentication and identity
 * assertion), with the provider's params (lower-cased, as Knox does) and the route prefix.
 */
public class TarnAuthzContributor extends ProviderDeploymentContributorBase {
  public static final String ROLE = "authorization";
  public static final String NAME = "TarnAuthz";

  @Override
  public String getRole() {
    return ROLE;
  }

  @Override
  public String getName() {
    return NAME;
  }

  @Override
  public void contributeFilter(DeploymentContext context, Provider provider, Service service,
                               ResourceDescriptor resource, List<FilterParamDescriptor> params) {
    List<FilterParamDescriptor> all = params == null ? new ArrayList<FilterParamDescriptor>() : new ArrayList<>(params);
    copyAllProviderParams(provider, resource, all);
    all.add(resource.createFilterParam().name(TarnAuthzFilter.ROUTE_PREFIX).value(OipRoute.routePrefix(resource.pattern())));
    all.add(resource.createFilterParam().name(TarnAuthzFilter.RESOURCE_ROLE).value(resource.role()));
    resource.addFilter().name(getName()).role(getRole()).impl(TarnAuthzFilter.class).params(all);
  }
}
