"""The Batch AI API as plain functions: (Services, ApiRequest) -> ApiResponse.

HTTP functions in functions/ turn an HttpRequest into an ApiRequest and an ApiResponse back into
an HttpResponse; everything else is here, free of any Functions or Azure SDK import."""
