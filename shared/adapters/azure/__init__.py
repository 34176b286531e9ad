"""The ports on Azure: Cosmos DB, Service Bus, Blob and Files storage, scale sets, file server VMs."""
