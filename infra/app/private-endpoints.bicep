// Private endpoints (VNET_ENABLED=true): storage blob, queue and table (the task hub and the app's
// tables) and Key Vault, each with its private DNS zone linked to the virtual network.
param virtualNetworkName string
param subnetName string
param storageAccountName string
param keyVaultName string
param location string = resourceGroup().location
param tags object = {}

resource vnet 'Microsoft.Network/virtualNetworks@2021-08-01' existing = {
  name: virtualNetworkName
}

resource storageAccount 'Microsoft.Storage/storageAccounts@2022-09-01' existing = {
  name: storageAccountName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

var endpoints = [
  { group: 'blob', zone: 'privatelink.blob.${environment().suffixes.storage}', target: storageAccount.id }
  { group: 'queue', zone: 'privatelink.queue.${environment().suffixes.storage}', target: storageAccount.id }
  { group: 'table', zone: 'privatelink.table.${environment().suffixes.storage}', target: storageAccount.id }
  { group: 'vault', zone: 'privatelink.vaultcore.azure.net', target: vault.id }
]

module zones 'br/public:avm/res/network/private-dns-zone:0.7.1' = [
  for e in endpoints: {
    name: '${e.group}-private-dns-zone-deployment'
    params: {
      name: e.zone
      location: 'global'
      tags: tags
      virtualNetworkLinks: [
        {
          name: '${e.group}-link-${take(toLower(uniqueString(e.target, virtualNetworkName)), 4)}'
          virtualNetworkResourceId: vnet.id
          registrationEnabled: false
          location: 'global'
          tags: tags
        }
      ]
    }
  }
]

module privateEndpoints 'br/public:avm/res/network/private-endpoint:0.11.0' = [
  for (e, i) in endpoints: {
    name: '${e.group}-private-endpoint-deployment'
    params: {
      name: '${e.group}-private-endpoint'
      location: location
      tags: tags
      subnetResourceId: '${vnet.id}/subnets/${subnetName}'
      privateLinkServiceConnections: [
        {
          name: '${e.group}PrivateLinkConnection'
          properties: {
            privateLinkServiceId: e.target
            groupIds: [e.group]
          }
        }
      ]
      customDnsConfigs: []
      privateDnsZoneGroup: {
        name: '${e.group}PrivateDnsZoneGroup'
        privateDnsZoneGroupConfigs: [
          {
            name: '${e.group}ARecord'
            privateDnsZoneResourceId: zones[i].outputs.resourceId
          }
        ]
      }
    }
  }
]
