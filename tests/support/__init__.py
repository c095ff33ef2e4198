"""What the tests share and pytest does not collect: the API client, factories, fleet worlds,
websocket clients, and the processes and private service stacks some tests start."""
