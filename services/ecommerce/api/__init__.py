"""HTTP layer of the ecommerce service: dependencies and one router per resource."""
