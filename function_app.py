"""The Azure Functions app: builds the FunctionApp and registers the blueprints of functions/.

Both the Azure Functions host and the local host (`batchai local up`) load this module."""

import azure.functions as func

from functions import access, agent_api, cluster_work, events, file_servers, files, health, http_api, openapi, submissions, web

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
app.register_functions(health.bp)
app.register_functions(http_api.bp)
app.register_functions(agent_api.bp)
app.register_functions(cluster_work.bp)
app.register_functions(files.bp)
app.register_functions(events.bp)
app.register_functions(access.bp)
app.register_functions(openapi.bp)
app.register_functions(web.bp)
app.register_functions(submissions.bp)
app.register_functions(file_servers.bp)
