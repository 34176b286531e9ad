// The control plane on Azure: a Python Functions app (consumption plan), the Cosmos DB account that
// holds its state, the Service Bus namespace for job lanes and events, and the storage account for the
// Functions runtime and job outputs. Deploy with:
//   az deployment group create -g <group> -f infra/main.bicep -p prefix=<unique-prefix> \
//       authAudience=api://<app-id> authOwners=<your object id>
// then publish the app with `func azure functionapp publish <prefix>-functions`.

@description('Short unique prefix for resource names (letters and digits).')
param prefix string

param location string = resourceGroup().location

@description('Audience of the Entra ID tokens callers send (the app registration\'s Application ID URI).')
param authAudience string

@description('Object ids (comma-separated) of the first owners, who grant roles to everyone else.')
param authOwners string

var storageName = toLower('${prefix}store')

resource storage 'Microsoft.Storage/storageAccounts@2023-01-01' = {
  name: storageName
  location: location
  sku: { name: 'Standard_LRS' }
  kind: 'StorageV2'
  properties: { minimumTlsVersion: 'TLS1_2', allowBlobPublicAccess: false }
}

resource cosmos 'Microsoft.DocumentDB/databaseAccounts@2024-05-15' = {
  name: '${prefix}-cosmos'
  location: location
  kind: 'GlobalDocumentDB'
  properties: {
    databaseAccountOfferType: 'Standard'
    locations: [ { locationName: location } ]
    capabilities: [ { name: 'EnableServerless' } ]
    consistencyPolicy: { defaultConsistencyLevel: 'Session' }
  }
}

resource database 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases@2024-05-15' = {
  parent: cosmos
  name: 'batchai'
  properties: { resource: { id: 'batchai' } }
}

resource bus 'Microsoft.ServiceBus/namespaces@2022-10-01-preview' = {
  name: '${prefix}-bus'
  location: location
  sku: { name: 'Standard', tier: 'Standard' }
}

// The cluster-work queue feeds the ClusterWork function (dispatch a cluster's lanes, reconcile its
// pool); the clusters' own priority lanes are made and removed by the app with each cluster.
resource clusterWork 'Microsoft.ServiceBus/namespaces/queues@2022-10-01-preview' = {
  parent: bus
  name: 'cluster-work'
  properties: { lockDuration: 'PT1M', maxDeliveryCount: 10, deadLetteringOnMessageExpiration: true }
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
// duplicate detection on the message id, and the default reply-to queue. Pipelines get a
// Send-only rule on the request queues and Listen on the replies.
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
  properties: { lockDuration: 'PT30S', maxDeliveryCount: 100, defaultMessageTimeToLive: 'P1D' }
}

resource busRule 'Microsoft.ServiceBus/namespaces/AuthorizationRules@2022-10-01-preview' = {
  parent: bus
  name: 'batchai'
  properties: { rights: [ 'Manage', 'Listen', 'Send' ] }
}

resource plan 'Microsoft.Web/serverfarms@2023-01-01' = {
  name: '${prefix}-plan'
  location: location
  sku: { name: 'Y1', tier: 'Dynamic' }
  kind: 'linux'
  properties: { reserved: true }
}

resource app 'Microsoft.Web/sites@2023-01-01' = {
  name: '${prefix}-functions'
  location: location
  kind: 'functionapp,linux'
  identity: { type: 'SystemAssigned' }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    siteConfig: {
      linuxFxVersion: 'Python|3.11'
      appSettings: [
        { name: 'FUNCTIONS_EXTENSION_VERSION', value: '~4' }
        { name: 'FUNCTIONS_WORKER_RUNTIME', value: 'python' }
        { name: 'AzureWebJobsFeatureFlags', value: 'EnableWorkerIndexing' }
        { name: 'AzureWebJobsStorage', value: 'DefaultEndpointsProtocol=https;AccountName=${storage.name};AccountKey=${storage.listKeys().keys[0].value};EndpointSuffix=${environment().suffixes.storage}' }
        { name: 'BATCHAI_STORE', value: 'cosmos' }
        { name: 'BATCHAI_COSMOS_ENDPOINT', value: cosmos.properties.documentEndpoint }
        { name: 'BATCHAI_COSMOS_KEY', value: cosmos.listKeys().primaryMasterKey }
        { name: 'BATCHAI_COSMOS_DATABASE', value: database.name }
        { name: 'BATCHAI_DEFAULT_LOCATION', value: location }
        { name: 'BATCHAI_MESSAGING', value: 'servicebus' }
        { name: 'BATCHAI_SERVICEBUS_CONNECTION', value: busRule.listKeys().primaryConnectionString }
        // The ClusterWork trigger's `connection` setting: the same namespace.
        { name: 'BATCHAI_SERVICEBUS', value: busRule.listKeys().primaryConnectionString }
        { name: 'BATCHAI_POOL', value: 'vmss' }
        { name: 'BATCHAI_AZURE_SUBSCRIPTION_ID', value: subscription().subscriptionId }
        { name: 'BATCHAI_AZURE_RESOURCE_GROUP', value: resourceGroup().name }
        { name: 'BATCHAI_PUBLIC_ENDPOINT', value: 'https://${prefix}-functions.azurewebsites.net' }
        { name: 'BATCHAI_AUTH_TENANT_ID', value: tenant().tenantId }
        { name: 'BATCHAI_AUTH_AUDIENCE', value: authAudience }
        { name: 'BATCHAI_AUTH_OWNERS', value: authOwners }
      ]
    }
  }
}

output endpoint string = 'https://${app.properties.defaultHostName}'
output serviceBusNamespace string = bus.name
// Give the app's identity Contributor on the resource group so that it can manage the scale sets.
output principalId string = app.identity.principalId
