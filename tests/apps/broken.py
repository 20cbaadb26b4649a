def application(environ, start_response)
    return [b"this file has a syntax error"]
