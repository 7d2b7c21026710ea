// The Flex Consumption function app: Python 3.13, user-assigned identity, every app setting the
// code reads (tests/unit/test_settings_parity.py checks this file against the code and
// local.settings.sample.json), Key Vault references for secrets, App Service Authentication.
param name string
param location string = resourceGroup().location
param tags object = {}
param applicationInsightsName string
param appServicePlanId string
param serviceName string = 'api'
param storageAccountName string
param deploymentStorageContainerName string
param virtualNetworkSubnetId string = ''
param instanceMemoryMB int = 4096
param maximumInstanceCount int = 10
param identityId string
param identityClientId string
param keyVaultName string
param taskHubName string
param graphSenderMailbox string = ''
param notificationCertificateName string = ''
param portalBaseUrl string = ''
param bankServicePhone string = ''
param trustedForwardedHops int = 1
param expertsClientId string = ''
param bankLoginClientId string = ''
param bankLoginWellKnownUrl string = ''
param durableRetentionDays int = 30
param personalDataRetentionDays int = 90
param auditRetentionYears int = 6

resource stg 'Microsoft.Storage/storageAccounts@2022-09-01' existing = {
  name: storageAccountName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

var siteUrl = 'https://${name}.azurewebsites.net'
func keyVaultRef(vault string, secret string) string => '@Microsoft.KeyVault(VaultName=${vault};SecretName=${secret})'

// The notification certificate exists only once an operator created it (docs/DEPLOY.md, step 5);
// until then Graph's basic notifications are used and the expert's End / the timer end meetings.
var certificateSettings = empty(notificationCertificateName) ? {} : {
  GRAPH_NOTIFICATION_CERTIFICATE: keyVaultRef(keyVaultName, notificationCertificateName)
  GRAPH_NOTIFICATION_CERTIFICATE_ID: notificationCertificateName
}
var authSecretSettings = union(
  empty(expertsClientId) ? {} : { MICROSOFT_PROVIDER_AUTHENTICATION_SECRET: keyVaultRef(keyVaultName, 'experts-auth-secret') },
  empty(bankLoginClientId) ? {} : { BANK_PROVIDER_AUTHENTICATION_SECRET: keyVaultRef(keyVaultName, 'bank-login-secret') }
)

// app settings: begin (parsed by tests/unit/test_settings_parity.py: one KEY: value per line)
var baseAppSettings = {
  // Storage by identity (no keys: the account refuses shared-key access).
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identityClientId
  AzureWebJobsStorage__blobServiceUri: stg.properties.primaryEndpoints.blob
  AzureWebJobsStorage__queueServiceUri: stg.properties.primaryEndpoints.queue
  AzureWebJobsStorage__tableServiceUri: stg.properties.primaryEndpoints.table
  TABLES_ENDPOINT: stg.properties.primaryEndpoints.table
  AZURE_CLIENT_ID: identityClientId
  TASK_HUB_NAME: taskHubName

  // Application Insights with Entra ID ingestion (local auth is disabled on the component).
  APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsights.properties.ConnectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'

  // Secrets, read through the identity's Key Vault Secrets User role.
  CODE_PEPPER: keyVaultRef(keyVaultName, 'code-pepper')
  PHONE_HMAC_KEY: keyVaultRef(keyVaultName, 'phone-hmac-key')
  GRAPH_CLIENT_STATE: keyVaultRef(keyVaultName, 'graph-client-state')

  // Microsoft Graph as the app's managed identity, named by AZURE_CLIENT_ID above (app roles
  // granted in docs/DEPLOY.md, step 3). GRAPH_CLIENT_ID is for an app registration with a
  // secret only, and stays unset.
  GRAPH_BASE_URL: 'https://graph.microsoft.com/v1.0'
  GRAPH_TENANT_ID: tenant().tenantId
  GRAPH_NOTIFICATION_JWKS: 'https://login.microsoftonline.com/common/discovery/v2.0/keys'
  GRAPH_SCHEDULE_CACHE_SECONDS: '60'
  GRAPH_SENDER_MAILBOX: graphSenderMailbox
  GRAPH_NOTIFICATION_URL: '${siteUrl}/api/graph/notifications'
  PORTAL_BASE_URL: empty(portalBaseUrl) ? siteUrl : portalBaseUrl
  BANK_SERVICE_PHONE: bankServicePhone
  PHONE_DEFAULT_REGION: 'FI'
  // App Service's front end appends one X-Forwarded-For hop; add one per gateway in front of it.
  TRUSTED_FORWARDED_HOPS: string(trustedForwardedHops)

  // Booking and identification rules: the code's defaults, stated so operators see them.
  JOIN_WINDOW_MINUTES: '15'
  SLOT_INTERVAL_MINUTES: '30'
  ALLOWED_DURATIONS: '30,45,60'
  MIN_LEAD_MINUTES: '120'
  MAX_ADVANCE_DAYS: '90'
  CHANGE_NOTICE_HOURS: '24'
  BUFFER_MINUTES: '0'
  HOLD_MINUTES: '10'
  END_GRACE_MINUTES: '30'
  CODE_DIGITS: '6'
  CODE_TTL_MINUTES: '10'
  CODE_MAX_ATTEMPTS: '3'
  MAX_CONSECUTIVE_FAILURES: '100'

  // Retention (appointments/retention.py, timer triggers in timer_triggers/retention.py).
  DURABLE_RETENTION_DAYS: string(durableRetentionDays)
  PERSONAL_DATA_RETENTION_DAYS: string(personalDataRetentionDays)
  AUDIT_RETENTION_YEARS: string(auditRetentionYears)
}
// app settings: end

module api 'br/public:avm/res/web/site:0.15.1' = {
  name: '${serviceName}-flex-consumption'
  params: {
    kind: 'functionapp,linux'
    name: name
    location: location
    tags: union(tags, { 'azd-service-name': serviceName })
    serverFarmResourceId: appServicePlanId
    managedIdentities: {
      systemAssigned: false
      userAssignedResourceIds: [identityId]
    }
    // Key Vault references resolve as the user-assigned identity (it holds the role).
    keyVaultAccessIdentityResourceId: identityId
    httpsOnly: true
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${stg.properties.primaryEndpoints.blob}${deploymentStorageContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        name: 'python'
        version: '3.13'
      }
    }
    siteConfig: {
      alwaysOn: false
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
    }
    virtualNetworkSubnetId: !empty(virtualNetworkSubnetId) ? virtualNetworkSubnetId : null
    appSettingsKeyValuePairs: union(baseAppSettings, certificateSettings, authSecretSettings)
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' existing = {
  name: name
}

// App Service Authentication ("Easy Auth"): it validates the sign-in and hands the app the
// X-MS-CLIENT-PRINCIPAL header, which the app trusts only because WEBSITE_AUTH_ENABLED is then
// set by the platform. Unauthenticated requests pass through: the catalogue, the lookup with
// booking code + phone and Graph's webhook are anonymous; every other route answers 401 itself.
resource authSettings 'Microsoft.Web/sites/config@2024-04-01' = if (!empty(expertsClientId) || !empty(bankLoginClientId)) {
  parent: site
  name: 'authsettingsV2'
  dependsOn: [api] // the site is the module's; configure it once it exists
  properties: {
    platform: {
      enabled: true
    }
    globalValidation: {
      requireAuthentication: false
      unauthenticatedClientAction: 'AllowAnonymous'
    }
    httpSettings: {
      requireHttps: true
      forwardProxy: {
        convention: 'NoProxy'
      }
    }
    login: {
      tokenStore: {
        enabled: false // the app needs the principal, not the providers' tokens
      }
      cookieExpiration: {
        convention: 'FixedTime'
        timeToExpiration: '08:00:00'
      }
    }
    identityProviders: {
      // Experts: the bank's Entra ID tenant; the app registration defines the Expert app role.
      azureActiveDirectory: {
        enabled: !empty(expertsClientId)
        registration: {
          clientId: expertsClientId
          clientSecretSettingName: 'MICROSOFT_PROVIDER_AUTHENTICATION_SECRET'
          openIdIssuer: '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'
        }
        validation: {
          allowedAudiences: empty(expertsClientId) ? [] : ['api://${expertsClientId}']
        }
      }
      // Customers: a PLACEHOLDER for the bank's strong customer authentication (an OpenID
      // Connect provider in front of the bank's login); docs/DEPLOY.md, step 6.
      customOpenIdConnectProviders: empty(bankLoginClientId) ? {} : {
        bank: {
          enabled: true
          registration: {
            clientId: bankLoginClientId
            clientCredential: {
              clientSecretSettingName: 'BANK_PROVIDER_AUTHENTICATION_SECRET'
            }
            openIdConnectConfiguration: {
              wellKnownOpenIdConfiguration: bankLoginWellKnownUrl
            }
          }
          login: {
            nameClaimType: 'sub'
            scopes: ['openid']
          }
        }
      }
    }
  }
}

output SERVICE_API_NAME string = api.outputs.name
