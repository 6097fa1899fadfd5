"""The runtime itself (`sor run`): the loop, one invocation, the language runtime, the API."""
