// The control plane on Azure, keyless: a Python Functions app on the Flex Consumption plan with a
// user-assigned identity; Cosmos DB (state), Service Bus (lanes, requests, job events), a storage
// account (the Functions host's own), Application Insights, and the virtual network the clusters'
// scale sets join (node subnet, NSG, NAT gateway for their outbound traffic). Every data-plane call is
// made with the identity (DefaultAzureCredential): no key or connection string is in the app settings.
// README.md, "Deploy to Azure", gives the commands in order. In short:
//   az deployment group create -g <group> -f infra/main.bicep -p infra/main.parameters.json
//   func azure functionapp publish <prefix>-functions --python
//
// Why Flex Consumption: Linux Consumption (Y1) takes no new features and is retired in 2028; Flex
// bills per use like it, scales each function on its own (HTTP apart from the queue triggers), deploys
// from a blob container with the identity (no shared key needed), and has no 10-minute cap. Elastic
// Premium would add always-on instances the service does not need: its timers are short and every
// handler is idempotent, so a cold start only delays a round.

@description('Short unique prefix for resource names (3-11 lower-case letters and digits).')
@minLength(3)
@maxLength(11)
param prefix string

param location string = resourceGroup().location

@description('Audience of the Entra ID tokens callers send (the app registration\'s Application ID URI).')
param authAudience string

@description('Object ids (comma-separated) of the first owners, who grant roles to everyone else.')
param authOwners string

@description('What each VM installs for its node agent (a pip argument: a package name or a wheel URL).')
param agentPackage string = 'batchai-rebuilt'

@description('Address space of the nodes\' virtual network, and of the subnet their scale sets join.')
param vnetAddressPrefix string = '10.40.0.0/16'
param nodeSubnetPrefix string = '10.40.0.0/20'

@description('Timer cadences (NCRONTAB, seconds first): the reconcile round of every cluster, and the job-events outbox sweep.')
param reconcileSchedule string = '*/10 * * * * *'
param outboxSchedule string = '*/10 * * * * *'

@description('Seconds between two ARM listings of one cluster\'s instances and NICs (ARM throttles reads per subscription).')
param armReadIntervalSeconds int = 20

@description('Most instances the Flex Consumption plan may scale the app out to.')
param maximumInstanceCount int = 40

var storageName = toLower('${prefix}store')
var deploymentContainer = 'app-package'
var appName = '${prefix}-functions'

// Built-in role definitions (ids are the same in every tenant).
var roles = {
  serviceBusDataOwner: '090c5cfd-751d-490a-894a-3ce6f1109419'
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  virtualMachineContributor: '9980e02c-c2be-4d73-94e8-173b1dc7cf3c'
  networkContributor: '4d97b98b-1d4f-4787-a291-c67834d212e7'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}
// Cosmos DB's built-in data-plane role "Cosmos DB Built-in Data Contributor" (its own RBAC, not ARM's).
var cosmosDataContributor = '00000000-0000-0000-0000-000000000002'

// ------------------------------------------------------------------ identity

// The app's identity: every SDK call of the app (Cosmos DB, Service Bus, ARM, storage) uses it.
resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: '${prefix}-identity'
  location: location
}

// ------------------------------------------------------------------ storage (the Functions host's own)

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: storageName
  location: location
  sku: { name: 'Standard_LRS' }
  kind: 'StorageV2'
  properties: {
    minimumTlsVersion: 'TLS1_2'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false // keyless: the host and the deployment use the identity
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

// Flex Consumption deploys the app's package from this container.
resource deployments 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainer
}

// ------------------------------------------------------------------ Cosmos DB (the state store)

resource cosmos 'Microsoft.DocumentDB/databaseAccounts@2024-05-15' = {
  name: '${prefix}-cosmos'
  location: location
  kind: 'GlobalDocumentDB'
  properties: {
    databaseAccountOfferType: 'Standard'
    locations: [ { locationName: location, failoverPriority: 0 } ]
    capabilities: [ { name: 'EnableServerless' } ]
    consistencyPolicy: { defaultConsistencyLevel: 'Session' }
    disableLocalAuth: true // keyless: Entra ID only (the identity's data-plane role below)
  }
}

resource database 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases@2024-05-15' = {
  parent: cosmos
  name: 'batchai'
  properties: { resource: { id: 'batchai' } }
}

// The containers of shared/resources.py, partitioned by /pk; with Entra ID the app cannot create
// them (that is a control-plane operation), so they are declared here with the code's indexing.
resource resourcesContainer 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-05-15' = {
  parent: database
  name: 'resources'
  properties: {
    resource: {
      id: 'resources'
      partitionKey: { paths: [ '/pk' ], kind: 'Hash' }
      indexingPolicy: {
        indexingMode: 'consistent'
        automatic: true
        includedPaths: [ { path: '/*' } ]
        excludedPaths: [ { path: '/"_etag"/?' } ]
        compositeIndexes: [
            [ { path: '/kind', order: 'ascending' }, { path: '/parent', order: 'ascending' } ]
            [ { path: '/kind', order: 'ascending' }, { path: '/workspace', order: 'ascending' } ]
            [ { path: '/kind', order: 'ascending' }, { path: '/cluster', order: 'ascending' } ]
            [ { path: '/kind', order: 'ascending' }, { path: '/state', order: 'ascending' } ]
            [ { path: '/parent', order: 'ascending' }, { path: '/kind', order: 'ascending' } ]
            [ { path: '/parent', order: 'ascending' }, { path: '/workspace', order: 'ascending' } ]
            [ { path: '/parent', order: 'ascending' }, { path: '/cluster', order: 'ascending' } ]
            [ { path: '/parent', order: 'ascending' }, { path: '/state', order: 'ascending' } ]
            [ { path: '/workspace', order: 'ascending' }, { path: '/kind', order: 'ascending' } ]
            [ { path: '/workspace', order: 'ascending' }, { path: '/parent', order: 'ascending' } ]
            [ { path: '/workspace', order: 'ascending' }, { path: '/cluster', order: 'ascending' } ]
            [ { path: '/workspace', order: 'ascending' }, { path: '/state', order: 'ascending' } ]
            [ { path: '/cluster', order: 'ascending' }, { path: '/kind', order: 'ascending' } ]
            [ { path: '/cluster', order: 'ascending' }, { path: '/parent', order: 'ascending' } ]
            [ { path: '/cluster', order: 'ascending' }, { path: '/workspace', order: 'ascending' } ]
            [ { path: '/cluster', order: 'ascending' }, { path: '/state', order: 'ascending' } ]
            [ { path: '/state', order: 'ascending' }, { path: '/kind', order: 'ascending' } ]
            [ { path: '/state', order: 'ascending' }, { path: '/parent', order: 'ascending' } ]
            [ { path: '/state', order: 'ascending' }, { path: '/workspace', order: 'ascending' } ]
            [ { path: '/state', order: 'ascending' }, { path: '/cluster', order: 'ascending' } ]
            [ { path: '/kind', order: 'ascending' }, { path: '/parent', order: 'ascending' }, { path: '/workspace', order: 'ascending' }, { path: '/cluster', order: 'ascending' }, { path: '/state', order: 'ascending' } ]
        ]
      }
    }
  }
}

resource nodesContainer 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-05-15' = {
  parent: database
  name: 'nodes'
  properties: { resource: { id: 'nodes', partitionKey: { paths: [ '/pk' ], kind: 'Hash' } } }
}

resource leasesContainer 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-05-15' = {
  parent: database
  name: 'leases'
  properties: { resource: { id: 'leases', partitionKey: { paths: [ '/pk' ], kind: 'Hash' } } }
}

resource heartbeatsContainer 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-05-15' = {
  parent: database
  name: 'heartbeats'
  properties: { resource: { id: 'heartbeats', partitionKey: { paths: [ '/pk' ], kind: 'Hash' } } }
}

resource roleAssignmentsContainer 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-05-15' = {
  parent: database
  name: 'roleAssignments'
  properties: { resource: { id: 'roleAssignments', partitionKey: { paths: [ '/pk' ], kind: 'Hash' } } }
}

// Read and write documents (not manage the account) in this account, for the app's identity.
resource cosmosDataRole 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments@2024-05-15' = {
  parent: cosmos
  name: guid(cosmos.id, identity.id, cosmosDataContributor)
  properties: {
    roleDefinitionId: '${cosmos.id}/sqlRoleDefinitions/${cosmosDataContributor}'
    principalId: identity.properties.principalId
    scope: cosmos.id
  }
}

// ------------------------------------------------------------------ Service Bus (messaging)

resource bus 'Microsoft.ServiceBus/namespaces@2022-10-01-preview' = {
  name: '${prefix}-bus'
  location: location
  sku: { name: 'Standard', tier: 'Standard' }
  properties: { disableLocalAuth: true } // keyless: Entra ID only
}

// The entities of shared/lanes.py (STATIC_QUEUES, STATIC_TOPICS), with the code's settings. Each
// cluster's priority lanes are made and removed by the app (hence Data Owner, not Sender/Receiver).
// cluster-work feeds the ClusterWork function (dispatch a cluster's lanes, reconcile its pool).
resource clusterWork 'Microsoft.ServiceBus/namespaces/queues@2022-10-01-preview' = {
  parent: bus
  name: 'cluster-work'
  properties: { lockDuration: 'PT1M', maxDeliveryCount: 10, requiresDuplicateDetection: false, deadLetteringOnMessageExpiration: true }
}

// Job events: every job state change, once (shared/events.py); the webhooks subscription feeds the
// JobEventsFanOut function, which puts one message per matching event subscription on event-deliveries.
resource jobEvents 'Microsoft.ServiceBus/namespaces/topics@2022-10-01-preview' = {
  parent: bus
  name: 'job-events'
  properties: { requiresDuplicateDetection: true, duplicateDetectionHistoryTimeWindow: 'PT10M' }
}

resource webhooks 'Microsoft.ServiceBus/namespaces/topics/subscriptions@2022-10-01-preview' = {
  parent: jobEvents
  name: 'webhooks'
  properties: { lockDuration: 'PT15S', maxDeliveryCount: 10, deadLetteringOnMessageExpiration: true }
}

resource eventDeliveries 'Microsoft.ServiceBus/namespaces/queues@2022-10-01-preview' = {
  parent: bus
  name: 'event-deliveries'
  properties: {
    lockDuration: 'PT15S'
    maxDeliveryCount: 10
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: 'PT10M'
    deadLetteringOnMessageExpiration: true
  }
}

// Requests by message (shared/submissions.py): jobs to create and cluster resizes, a week of
// duplicate detection on the message id, and the default reply-to queue. Pipelines get the role
// Azure Service Bus Data Sender on the request queues and Data Receiver on the replies.
resource jobSubmissions 'Microsoft.ServiceBus/namespaces/queues@2022-10-01-preview' = {
  parent: bus
  name: 'job-submissions'
  properties: {
    lockDuration: 'PT1M'
    maxDeliveryCount: 10
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: 'P7D'
    deadLetteringOnMessageExpiration: true
  }
}

resource clusterResizes 'Microsoft.ServiceBus/namespaces/queues@2022-10-01-preview' = {
  parent: bus
  name: 'cluster-resizes'
  properties: {
    lockDuration: 'PT1M'
    maxDeliveryCount: 10
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: 'P7D'
    deadLetteringOnMessageExpiration: true
  }
}

resource submissionReplies 'Microsoft.ServiceBus/namespaces/queues@2022-10-01-preview' = {
  parent: bus
  name: 'submission-replies'
  properties: {
    lockDuration: 'PT30S'
    maxDeliveryCount: 100
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: 'PT10M'
    defaultMessageTimeToLive: 'P1D'
  }
}

// ------------------------------------------------------------------ the nodes' network

// Inbound: nothing from the internet (the VNet's own traffic, for mpirun over ssh between nodes, is
// allowed by the default rules). Outbound goes through the NAT gateway: nodes reach the control
// plane, package mirrors and storage with a fixed public address and no public IP of their own.
resource nodeNsg 'Microsoft.Network/networkSecurityGroups@2024-01-01' = {
  name: '${prefix}-nodes-nsg'
  location: location
  properties: {
    securityRules: [
      {
        name: 'deny-internet-inbound'
        properties: {
          priority: 4000
          direction: 'Inbound'
          access: 'Deny'
          protocol: '*'
          sourceAddressPrefix: 'Internet'
          sourcePortRange: '*'
          destinationAddressPrefix: '*'
          destinationPortRange: '*'
        }
      }
    ]
  }
}

resource natAddress 'Microsoft.Network/publicIPAddresses@2024-01-01' = {
  name: '${prefix}-nat-ip'
  location: location
  sku: { name: 'Standard' }
  properties: { publicIPAllocationMethod: 'Static' }
}

resource nat 'Microsoft.Network/natGateways@2024-01-01' = {
  name: '${prefix}-nat'
  location: location
  sku: { name: 'Standard' }
  properties: {
    idleTimeoutInMinutes: 10
    publicIpAddresses: [ { id: natAddress.id } ]
  }
}

resource vnet 'Microsoft.Network/virtualNetworks@2024-01-01' = {
  name: '${prefix}-vnet'
  location: location
  properties: {
    addressSpace: { addressPrefixes: [ vnetAddressPrefix ] }
    subnets: [
      {
        name: 'nodes'
        properties: {
          addressPrefix: nodeSubnetPrefix
          networkSecurityGroup: { id: nodeNsg.id }
          natGateway: { id: nat.id }
        }
      }
    ]
  }
}

// ------------------------------------------------------------------ monitoring

resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: '${prefix}-logs'
  location: location
  properties: { sku: { name: 'PerGB2018' }, retentionInDays: 30 }
}

// Traces and metrics of the app (BATCHAI_OTEL_EXPORTER=azuremonitor) and the Functions host's logs.
resource insights 'Microsoft.Insights/components@2020-02-02' = {
  name: '${prefix}-insights'
  location: location
  kind: 'web'
  properties: { Application_Type: 'web', WorkspaceResourceId: logs.id }
}

// ------------------------------------------------------------------ the Functions app

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: '${prefix}-plan'
  location: location
  kind: 'functionapp'
  sku: { name: 'FC1', tier: 'FlexConsumption' }
  properties: { reserved: true }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  name: appName
  location: location
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identity.id}': {} }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainer}'
          authentication: { type: 'UserAssignedIdentity', userAssignedIdentityResourceId: identity.id }
        }
      }
      scaleAndConcurrency: { maximumInstanceCount: maximumInstanceCount, instanceMemoryMB: 2048 }
      runtime: { name: 'python', version: '3.11' }
    }
    siteConfig: {
      appSettings: [
        // The Functions host's storage and the triggers' Service Bus connection, by identity.
        { name: 'AzureWebJobsStorage__accountName', value: storage.name }
        { name: 'AzureWebJobsStorage__credential', value: 'managedidentity' }
        { name: 'AzureWebJobsStorage__clientId', value: identity.properties.clientId }
        { name: 'BATCHAI_SERVICEBUS__fullyQualifiedNamespace', value: '${bus.name}.servicebus.windows.net' }
        { name: 'BATCHAI_SERVICEBUS__credential', value: 'managedidentity' }
        { name: 'BATCHAI_SERVICEBUS__clientId', value: identity.properties.clientId }
        // DefaultAzureCredential in the app's code: this user-assigned identity.
        { name: 'AZURE_CLIENT_ID', value: identity.properties.clientId }
        { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', value: insights.properties.ConnectionString }
        // shared/settings.py: every setting an Azure deployment needs (the rest keep their defaults).
        { name: 'BATCHAI_DATA_DIR', value: '/tmp/batchai' } // the package folder is read-only
        { name: 'BATCHAI_DEFAULT_LOCATION', value: location }
        { name: 'BATCHAI_PUBLIC_ENDPOINT', value: 'https://${appName}.azurewebsites.net' }
        { name: 'BATCHAI_STORE', value: 'cosmos' }
        { name: 'BATCHAI_COSMOS_ENDPOINT', value: cosmos.properties.documentEndpoint }
        { name: 'BATCHAI_COSMOS_DATABASE', value: database.name }
        { name: 'BATCHAI_MESSAGING', value: 'servicebus' }
        { name: 'BATCHAI_SERVICEBUS_CONNECTION', value: '${bus.name}.servicebus.windows.net' } // a host name: keyless
        { name: 'BATCHAI_BLOBS', value: 'azure' }
        { name: 'BATCHAI_BLOB_ENDPOINT', value: 'https://{account}.blob.${environment().suffixes.storage}' }
        { name: 'BATCHAI_POOL', value: 'vmss' }
        { name: 'BATCHAI_AZURE_SUBSCRIPTION_ID', value: subscription().subscriptionId }
        { name: 'BATCHAI_AZURE_RESOURCE_GROUP', value: resourceGroup().name }
        { name: 'BATCHAI_DEFAULT_SUBNET_ID', value: vnet.properties.subnets[0].id }
        { name: 'BATCHAI_AGENT_PACKAGE', value: agentPackage }
        { name: 'BATCHAI_ARM_READ_INTERVAL_SECONDS', value: string(armReadIntervalSeconds) }
        { name: 'BATCHAI_RECONCILE_SCHEDULE', value: reconcileSchedule }
        { name: 'BATCHAI_OUTBOX_SCHEDULE', value: outboxSchedule }
        { name: 'BATCHAI_TIMERS_RUN_ON_STARTUP', value: 'false' } // not on every scale-out and restart
        { name: 'BATCHAI_OTEL_EXPORTER', value: 'azuremonitor' }
        // Its connection string, which agents are given too (with agentPackage 'batchai-rebuilt[azuremonitor]').
        { name: 'BATCHAI_OTEL_ENDPOINT', value: insights.properties.ConnectionString }
        { name: 'BATCHAI_AUTH_TENANT_ID', value: tenant().tenantId }
        { name: 'BATCHAI_AUTH_AUDIENCE', value: authAudience }
        { name: 'BATCHAI_AUTH_OWNERS', value: authOwners }
      ]
    }
  }
  dependsOn: [ hostStorageRole, deploymentStorageRole ]
}

// ------------------------------------------------------------------ what the identity may do

// The Functions host's storage (its keys, timers' leases) through the identity.
resource hostStorageRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: storage
  name: guid(storage.id, identity.id, roles.storageBlobDataOwner)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// Flex Consumption reads the app's package from the deployment container.
resource deploymentStorageRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: deployments
  name: guid(deployments.id, identity.id, roles.storageBlobDataContributor)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// Send, receive and settle on every entity, and make and delete each cluster's lanes.
resource busRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: bus
  name: guid(bus.id, identity.id, roles.serviceBusDataOwner)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.serviceBusDataOwner)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// The clusters' scale sets live in this resource group: create, resize, delete them and their
// instances, and list their NICs (Virtual Machine Contributor); join the node subnet and read NICs
// (Network Contributor).
resource computeRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(resourceGroup().id, identity.id, roles.virtualMachineContributor)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.virtualMachineContributor)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource networkRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(resourceGroup().id, identity.id, roles.networkContributor)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.networkContributor)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

// Telemetry to Application Insights with Entra ID, should its local authentication be turned off.
resource telemetryRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: insights
  name: guid(insights.id, identity.id, roles.monitoringMetricsPublisher)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

output endpoint string = 'https://${app.properties.defaultHostName}'
output functionApp string = app.name
output serviceBusNamespace string = '${bus.name}.servicebus.windows.net'
output nodeSubnetId string = vnet.properties.subnets[0].id
output identityPrincipalId string = identity.properties.principalId
