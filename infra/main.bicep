// Everything the appointments app needs in one resource group, at subscription scope as azd
// expects. Layout and module versions follow Microsoft's azd templates for Python (Durable)
// Functions on Flex Consumption (Azure-Samples/functions-quickstart-python-http-azd,
// durable-functions-quickstart-python-azd); Azure Verified Modules wherever one exists.
// docs/DEPLOY.md lists each resource, role and setting, and the steps azd cannot do.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; a short unique hash of it names every resource.')
param environmentName string

@minLength(1)
@description('Primary location for all resources (a region that offers Flex Consumption).')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Private endpoints for storage and Key Vault, and VNet integration of the app.')
param vnetEnabled bool = false

@description('Object id of the deploying user: data-plane roles for debugging. Empty in production.')
param principalId string = ''

// Secrets: generated once by infra/hooks/preprovision.sh and kept in the azd environment.
@secure()
@description('Pepper of the identification-code hashes (CODE_PEPPER).')
param codePepper string
@secure()
@description('Key of the phone-number HMAC used by the lookup without login (PHONE_HMAC_KEY).')
param phoneHmacKey string
@secure()
@description('Key of each Graph subscription clientState (GRAPH_CLIENT_STATE).')
param graphClientState string

@description('Service mailbox that sends the experts\' mail (GRAPH_SENDER_MAILBOX).')
param graphSenderMailbox string = ''
@description('Key Vault certificate for rich Graph notifications; empty until created (docs/DEPLOY.md, step 5).')
param notificationCertificateName string = ''
@description('Base URL of the customer portal, for links in notifications; default the app itself.')
param portalBaseUrl string = ''
@description('The number customers are told to call, as they dial it (BANK_SERVICE_PHONE).')
param bankServicePhone string = ''
@description('Proxies that append to X-Forwarded-For: 1 for App Service\'s front end, +1 per gateway in front.')
@minValue(0)
@maxValue(8)
param trustedForwardedHops int = 1

// App Service Authentication (docs/DEPLOY.md, step 6). Empty client ids leave it off.
@description('Client id of the Entra ID app registration the experts sign in with.')
param expertsClientId string = ''
@description('Client id at the bank\'s customer login (OpenID Connect).')
param bankLoginClientId string = ''
@description('The bank\'s OpenID configuration URL (.well-known/openid-configuration).')
param bankLoginWellKnownUrl string = ''

@minValue(1)
param durableRetentionDays int = 30
@minValue(1)
param personalDataRetentionDays int = 90
@minValue(1)
param auditRetentionYears int = 6

@description('Flex Consumption instance memory: 4096 MB is two vCPUs, what host.json\'s concurrency is sized for.')
@allowed([2048, 4096])
param instanceMemoryMB int = 4096
@description('Scale-out ceiling: Graph allows 4 concurrent requests per mailbox; more instances only add 429s.')
param maximumInstanceCount int = 10

var abbrs = loadJsonContent('./abbreviations.json')
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = { 'azd-env-name': environmentName }
var functionAppName = '${abbrs.webSitesFunctions}appointments-${resourceToken}'
var deploymentStorageContainerName = 'app-package-${take(functionAppName, 32)}-${take(toLower(uniqueString(functionAppName, resourceToken)), 7)}'
var keyVaultName = '${abbrs.keyVaultVaults}${resourceToken}'
var vNetName = '${abbrs.networkVirtualNetworks}${resourceToken}'
var taskHubName = 'AppointmentsHub'

resource rg 'Microsoft.Resources/resourceGroups@2021-04-01' = {
  name: '${abbrs.resourcesResourceGroups}${environmentName}'
  location: location
  tags: tags
}

// The app's one identity: storage, Key Vault, Application Insights and Microsoft Graph.
module apiIdentity 'br/public:avm/res/managed-identity/user-assigned-identity:0.4.1' = {
  name: 'apiUserAssignedIdentity'
  scope: rg
  params: {
    name: '${abbrs.managedIdentityUserAssignedIdentities}appointments-${resourceToken}'
    location: location
    tags: tags
  }
}

module appServicePlan 'br/public:avm/res/web/serverfarm:0.1.1' = {
  name: 'appserviceplan'
  scope: rg
  params: {
    name: '${abbrs.webServerFarms}${resourceToken}'
    sku: {
      name: 'FC1'
      tier: 'FlexConsumption'
    }
    reserved: true
    location: location
    tags: tags
  }
}

// One account for the task hub (blobs, queues, tables) and the app's tables. Reason: the app
// and Durable read and write together per appointment, one identity and one set of private
// endpoints cover both, and the account's limits (20,000 requests/s) are far above a bank's
// appointment traffic. The app's tables have names of their own (Appointments, Audit, ...)
// that never clash with the hub's AppointmentsHub* tables; retention purges both. Moving the
// task hub to the Durable Task Scheduler (docs/DEPLOY.md) takes Durable's load off it anyway.
module storage 'br/public:avm/res/storage/storage-account:0.8.3' = {
  name: 'storage'
  scope: rg
  params: {
    name: '${abbrs.storageStorageAccounts}${resourceToken}'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false // identity only: no account keys, no connection strings
    dnsEndpointType: 'Standard'
    publicNetworkAccess: vnetEnabled ? 'Disabled' : 'Enabled'
    networkAcls: vnetEnabled ? {
      defaultAction: 'Deny'
      bypass: 'None'
    } : {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
    blobServices: {
      containers: [{ name: deploymentStorageContainerName }]
    }
    minimumTlsVersion: 'TLS1_2'
    location: location
    tags: tags
  }
}

module logAnalytics 'br/public:avm/res/operational-insights/workspace:0.7.0' = {
  name: '${uniqueString(deployment().name, location)}-loganalytics'
  scope: rg
  params: {
    name: '${abbrs.operationalInsightsWorkspaces}${resourceToken}'
    location: location
    tags: tags
    dataRetention: 30 // logs carry no personal data; 30 days covers an incident's investigation
  }
}

module monitoring 'br/public:avm/res/insights/component:0.4.1' = {
  name: '${uniqueString(deployment().name, location)}-appinsights'
  scope: rg
  params: {
    name: '${abbrs.insightsComponents}${resourceToken}'
    location: location
    tags: tags
    workspaceResourceId: logAnalytics.outputs.resourceId
    disableLocalAuth: true // ingestion only with Entra ID: the identity's Monitoring Metrics Publisher role
  }
}

// Secrets the app reads through Key Vault references; the notification certificate is added by
// hand (docs/DEPLOY.md, step 5): ARM cannot create Key Vault certificates.
module keyVault 'br/public:avm/res/key-vault/vault:0.13.3' = {
  name: 'keyvault'
  scope: rg
  params: {
    name: keyVaultName
    location: location
    tags: tags
    enableRbacAuthorization: true
    enablePurgeProtection: true
    softDeleteRetentionInDays: 90
    publicNetworkAccess: vnetEnabled ? 'Disabled' : 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: vnetEnabled ? 'Deny' : 'Allow'
    }
    secrets: [
      { name: 'code-pepper', value: codePepper }
      { name: 'phone-hmac-key', value: phoneHmacKey }
      { name: 'graph-client-state', value: graphClientState }
    ]
    roleAssignments: concat(
      [
        {
          principalId: apiIdentity.outputs.principalId
          principalType: 'ServicePrincipal'
          roleDefinitionIdOrName: 'Key Vault Secrets User'
        }
      ],
      empty(principalId) ? [] : [
        {
          principalId: principalId
          principalType: 'User'
          roleDefinitionIdOrName: 'Key Vault Certificates Officer'
        }
      ]
    )
  }
}

module api './app/api.bicep' = {
  name: 'api'
  scope: rg
  params: {
    name: functionAppName
    location: location
    tags: tags
    applicationInsightsName: monitoring.outputs.name
    appServicePlanId: appServicePlan.outputs.resourceId
    storageAccountName: storage.outputs.name
    deploymentStorageContainerName: deploymentStorageContainerName
    identityId: apiIdentity.outputs.resourceId
    identityClientId: apiIdentity.outputs.clientId
    keyVaultName: keyVault.outputs.name
    taskHubName: taskHubName
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    graphSenderMailbox: graphSenderMailbox
    notificationCertificateName: notificationCertificateName
    portalBaseUrl: portalBaseUrl
    bankServicePhone: bankServicePhone
    trustedForwardedHops: trustedForwardedHops
    expertsClientId: expertsClientId
    bankLoginClientId: bankLoginClientId
    bankLoginWellKnownUrl: bankLoginWellKnownUrl
    durableRetentionDays: durableRetentionDays
    personalDataRetentionDays: personalDataRetentionDays
    auditRetentionYears: auditRetentionYears
    virtualNetworkSubnetId: vnetEnabled ? serviceVirtualNetwork.outputs.appSubnetID : ''
  }
}

module rbac './app/rbac.bicep' = {
  name: 'rbacAssignments'
  scope: rg
  params: {
    storageAccountName: storage.outputs.name
    appInsightsName: monitoring.outputs.name
    managedIdentityPrincipalId: apiIdentity.outputs.principalId
    userIdentityPrincipalId: principalId
  }
}

module serviceVirtualNetwork './app/vnet.bicep' = if (vnetEnabled) {
  name: 'serviceVirtualNetwork'
  scope: rg
  params: {
    location: location
    tags: tags
    vNetName: vNetName
  }
}

module privateEndpoints './app/private-endpoints.bicep' = if (vnetEnabled) {
  name: 'privateEndpoints'
  scope: rg
  params: {
    location: location
    tags: tags
    virtualNetworkName: vNetName
    subnetName: vnetEnabled ? serviceVirtualNetwork.outputs.peSubnetName : ''
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
  }
}

output APPLICATIONINSIGHTS_CONNECTION_STRING string = monitoring.outputs.connectionString
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_NAME string = api.outputs.SERVICE_API_NAME
output SERVICE_API_NAME string = api.outputs.SERVICE_API_NAME
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output API_IDENTITY_PRINCIPAL_ID string = apiIdentity.outputs.principalId
output API_IDENTITY_CLIENT_ID string = apiIdentity.outputs.clientId
output TASK_HUB_NAME string = taskHubName
