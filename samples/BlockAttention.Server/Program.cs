using BlockAttention.Server;

var app = ServerApp.Build(args);
app.Run();

/// <summary>The entry point; public so that tests can host the server with WebApplicationFactory.</summary>
public partial class Program;
