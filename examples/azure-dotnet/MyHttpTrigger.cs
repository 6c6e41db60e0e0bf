using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Azure.Functions.Worker;
using Microsoft.Extensions.Logging;

namespace Fnctl.Examples;

// The Azure Functions HTTP trigger template: GET /api/MyHttpTrigger?name=Ada or
// POST {"name": "Ada"} answers "Hello, Ada. ...".
public class MyHttpTrigger
{
    private readonly ILogger<MyHttpTrigger> _logger;

    public MyHttpTrigger(ILogger<MyHttpTrigger> logger)
    {
        _logger = logger;
    }

    [Function("MyHttpTrigger")]
    public async Task<IActionResult> Run(
        [HttpTrigger(AuthorizationLevel.Anonymous, "get", "post")] HttpRequest req)
    {
        _logger.LogInformation("C# HTTP trigger function processed a request.");

        string? name = req.Query["name"];
        if (string.IsNullOrEmpty(name))
        {
            var body = await new StreamReader(req.Body).ReadToEndAsync();
            if (!string.IsNullOrWhiteSpace(body))
            {
                try
                {
                    using var doc = JsonDocument.Parse(body);
                    if (doc.RootElement.ValueKind == JsonValueKind.Object &&
                        doc.RootElement.TryGetProperty("name", out var value) &&
                        value.ValueKind == JsonValueKind.String)
                    {
                        name = value.GetString();
                    }
                }
                catch (JsonException)
                {
                    return new BadRequestObjectResult("The request body is not JSON.");
                }
            }
        }

        return new OkObjectResult(string.IsNullOrEmpty(name)
            ? "This HTTP triggered function executed successfully. Pass a name in the query string or in the request body for a personalized response."
            : $"Hello, {name}. This HTTP triggered function executed successfully.");
    }
}
