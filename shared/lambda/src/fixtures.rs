//! Support for unit tests of the HTTP functions.

/// The JSON body of a function's API Gateway response.
pub fn response_json(response: &aws_lambda_events::apigw::ApiGatewayV2httpResponse) -> serde_json::Value {
    match &response.body {
        Some(aws_lambda_events::encodings::Body::Text(text)) => {
            serde_json::from_str(text).expect("the response body is JSON")
        }
        other => panic!("expected a text body, got {other:?}"),
    }
}
