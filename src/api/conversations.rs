//! `ConversationsService`: the request's own parts of each RPC; [`super::call`] runs them (and
//! checks, before any upstream call, that the conversation belongs to the caller).

use super::{
    call::{Failure, NoStream, Opened, Rpc, Stored, Upstream, serve},
    responses::page_query,
};
use crate::{
    convert::responses::{self as convert, request_object},
    openai::Accept,
    owners::Kind,
    pb::{
        Conversation, ConversationItemList, CreateConversationItemsRequest,
        CreateConversationItemsResponse, CreateConversationRequest, CreateConversationResponse,
        DeleteConversationItemRequest, DeleteConversationItemResponse, DeleteConversationRequest,
        DeleteConversationResponse, GetConversationItemRequest, GetConversationItemResponse,
        GetConversationRequest, GetConversationResponse, ListConversationItemsRequest,
        ListConversationItemsResponse, OutputItem, UpdateConversationRequest,
        UpdateConversationResponse, conversations_service_server::ConversationsService,
    },
};

serve!(ConversationsService {
    unary create_conversation(CreateConversation);
    unary get_conversation(GetConversation);
    unary update_conversation(UpdateConversation);
    unary delete_conversation(DeleteConversation);
    unary create_conversation_items(CreateConversationItems);
    unary list_conversation_items(ListConversationItems);
    unary get_conversation_item(GetConversationItem);
    unary delete_conversation_item(DeleteConversationItem);
});

const CONVERSATION: &str = "openai_gateway.v1.Conversation";
const ITEMS: &str = "openai_gateway.v1.ConversationItemList";

fn conversation_path(id: &str) -> String {
    format!("/conversations/{id}")
}

fn item_path(conversation: &str, item: &str) -> String {
    format!("/conversations/{conversation}/items/{item}")
}

/// `CreateConversation`: `POST /conversations`.
pub struct CreateConversation;

impl Rpc for CreateConversation {
    type Request = CreateConversationRequest;
    type Message = CreateConversationResponse;
    type Source = NoStream<CreateConversationResponse>;
    const METHOD: &'static str = "CreateConversation";

    async fn open(
        &self,
        upstream: Upstream,
        request: CreateConversationRequest,
    ) -> Result<Opened<CreateConversationResponse, Self::Source>, Failure> {
        let body = request_object(&request, "openai_gateway.v1.CreateConversationRequest");
        let response = upstream
            .post("/conversations", convert::to_bytes(body), Accept::Json)
            .await?;
        let headers = response.headers().clone();
        let meta = response.meta().clone();
        let conversation: Conversation =
            convert::answer(&response.body().await?, CONVERSATION, &meta)?;
        if let Some(id) = &conversation.id {
            upstream.bind(Kind::Conversation, id).await;
        }
        let answer = CreateConversationResponse {
            conversation: Some(conversation),
        };
        Ok(Opened::ready(headers, vec![answer], None))
    }
}

/// `GetConversation`: `GET /conversations/{id}`.
pub struct GetConversation;

impl Rpc for GetConversation {
    type Request = GetConversationRequest;
    type Message = GetConversationResponse;
    type Source = NoStream<GetConversationResponse>;
    const METHOD: &'static str = "GetConversation";

    fn target(request: &GetConversationRequest) -> Option<Stored<'_>> {
        Some(Stored::conversation(&request.conversation_id))
    }

    async fn open(
        &self,
        upstream: Upstream,
        request: GetConversationRequest,
    ) -> Result<Opened<GetConversationResponse, Self::Source>, Failure> {
        let id = &request.conversation_id;
        let answer = upstream
            .client
            .get(&conversation_path(id), &[], Accept::Json, upstream.deadline)
            .await;
        let (headers, body, meta) = upstream
            .answer_about(answer, Kind::Conversation, id)
            .await?;
        let answer = GetConversationResponse {
            conversation: Some(convert::answer(&body, CONVERSATION, &meta)?),
        };
        Ok(Opened::ready(headers, vec![answer], None))
    }
}

/// `UpdateConversation`: `POST /conversations/{id}`.
pub struct UpdateConversation;

impl Rpc for UpdateConversation {
    type Request = UpdateConversationRequest;
    type Message = UpdateConversationResponse;
    type Source = NoStream<UpdateConversationResponse>;
    const METHOD: &'static str = "UpdateConversation";

    fn target(request: &UpdateConversationRequest) -> Option<Stored<'_>> {
        Some(Stored::conversation(&request.conversation_id))
    }

    async fn open(
        &self,
        upstream: Upstream,
        request: UpdateConversationRequest,
    ) -> Result<Opened<UpdateConversationResponse, Self::Source>, Failure> {
        let id = request.conversation_id.clone();
        let mut body = request_object(&request, "openai_gateway.v1.UpdateConversationRequest");
        // OpenAI requires `metadata`; an empty map (which the proto cannot tell from unset)
        // clears it.
        body.entry("metadata")
            .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
        let answer = upstream
            .post(
                &conversation_path(&id),
                convert::to_bytes(body),
                Accept::Json,
            )
            .await;
        let (headers, body, meta) = upstream
            .answer_about(answer, Kind::Conversation, &id)
            .await?;
        let answer = UpdateConversationResponse {
            conversation: Some(convert::answer(&body, CONVERSATION, &meta)?),
        };
        Ok(Opened::ready(headers, vec![answer], None))
    }
}

/// `DeleteConversation`: `DELETE /conversations/{id}`.
pub struct DeleteConversation;

impl Rpc for DeleteConversation {
    type Request = DeleteConversationRequest;
    type Message = DeleteConversationResponse;
    type Source = NoStream<DeleteConversationResponse>;
    const METHOD: &'static str = "DeleteConversation";

    fn target(request: &DeleteConversationRequest) -> Option<Stored<'_>> {
        Some(Stored::conversation(&request.conversation_id))
    }

    async fn open(
        &self,
        upstream: Upstream,
        request: DeleteConversationRequest,
    ) -> Result<Opened<DeleteConversationResponse, Self::Source>, Failure> {
        let id = &request.conversation_id;
        let answer = upstream
            .client
            .delete(&conversation_path(id), upstream.deadline)
            .await;
        let (headers, body, meta) = upstream
            .answer_about(answer, Kind::Conversation, id)
            .await?;
        upstream.forget(Kind::Conversation, id).await;
        let deleted =
            convert::answer(&body, "openai_gateway.v1.DeleteConversationResponse", &meta)?;
        Ok(Opened::ready(headers, vec![deleted], None))
    }
}

/// `CreateConversationItems`: `POST /conversations/{id}/items`.
pub struct CreateConversationItems;

impl Rpc for CreateConversationItems {
    type Request = CreateConversationItemsRequest;
    type Message = CreateConversationItemsResponse;
    type Source = NoStream<CreateConversationItemsResponse>;
    const METHOD: &'static str = "CreateConversationItems";

    fn target(request: &CreateConversationItemsRequest) -> Option<Stored<'_>> {
        Some(Stored::conversation(&request.conversation_id))
    }

    async fn open(
        &self,
        upstream: Upstream,
        request: CreateConversationItemsRequest,
    ) -> Result<Opened<CreateConversationItemsResponse, Self::Source>, Failure> {
        let id = request.conversation_id.clone();
        let query = page_query(None, None, None, &request.include);
        let body = request_object(&request, "openai_gateway.v1.CreateConversationItemsRequest");
        let answer = upstream
            .client
            .post_json_with_query(
                &format!("/conversations/{id}/items"),
                &query,
                convert::to_bytes(body),
                upstream.deadline,
            )
            .await;
        let (headers, body, meta) = upstream
            .answer_about(answer, Kind::Conversation, &id)
            .await?;
        let items: ConversationItemList = convert::answer(&body, ITEMS, &meta)?;
        let answer = CreateConversationItemsResponse { items: Some(items) };
        Ok(Opened::ready(headers, vec![answer], None))
    }
}

/// `ListConversationItems`: `GET /conversations/{id}/items`.
pub struct ListConversationItems;

impl Rpc for ListConversationItems {
    type Request = ListConversationItemsRequest;
    type Message = ListConversationItemsResponse;
    type Source = NoStream<ListConversationItemsResponse>;
    const METHOD: &'static str = "ListConversationItems";

    fn target(request: &ListConversationItemsRequest) -> Option<Stored<'_>> {
        Some(Stored::conversation(&request.conversation_id))
    }

    async fn open(
        &self,
        upstream: Upstream,
        request: ListConversationItemsRequest,
    ) -> Result<Opened<ListConversationItemsResponse, Self::Source>, Failure> {
        let id = &request.conversation_id;
        let query = page_query(
            request.limit,
            request.order.as_deref(),
            request.after.as_deref(),
            &request.include,
        );
        let answer = upstream
            .client
            .get(
                &format!("/conversations/{id}/items"),
                &query,
                Accept::Json,
                upstream.deadline,
            )
            .await;
        let (headers, body, meta) = upstream
            .answer_about(answer, Kind::Conversation, id)
            .await?;
        let answer = ListConversationItemsResponse {
            items: Some(convert::answer(&body, ITEMS, &meta)?),
        };
        Ok(Opened::ready(headers, vec![answer], None))
    }
}

/// `GetConversationItem`: `GET /conversations/{id}/items/{item_id}`.
pub struct GetConversationItem;

impl Rpc for GetConversationItem {
    type Request = GetConversationItemRequest;
    type Message = GetConversationItemResponse;
    type Source = NoStream<GetConversationItemResponse>;
    const METHOD: &'static str = "GetConversationItem";

    fn target(request: &GetConversationItemRequest) -> Option<Stored<'_>> {
        Some(Stored::conversation(&request.conversation_id))
    }

    async fn open(
        &self,
        upstream: Upstream,
        request: GetConversationItemRequest,
    ) -> Result<Opened<GetConversationItemResponse, Self::Source>, Failure> {
        let id = &request.conversation_id;
        let query = page_query(None, None, None, &request.include);
        let answer = upstream
            .client
            .get(
                &item_path(id, &request.item_id),
                &query,
                Accept::Json,
                upstream.deadline,
            )
            .await;
        let (headers, body, meta) = upstream
            .answer_about(answer, Kind::Conversation, id)
            .await?;
        let item: OutputItem = convert::answer(&body, "openai_gateway.v1.OutputItem", &meta)?;
        let answer = GetConversationItemResponse { item: Some(item) };
        Ok(Opened::ready(headers, vec![answer], None))
    }
}

/// `DeleteConversationItem`: `DELETE /conversations/{id}/items/{item_id}`.
pub struct DeleteConversationItem;

impl Rpc for DeleteConversationItem {
    type Request = DeleteConversationItemRequest;
    type Message = DeleteConversationItemResponse;
    type Source = NoStream<DeleteConversationItemResponse>;
    const METHOD: &'static str = "DeleteConversationItem";

    fn target(request: &DeleteConversationItemRequest) -> Option<Stored<'_>> {
        Some(Stored::conversation(&request.conversation_id))
    }

    async fn open(
        &self,
        upstream: Upstream,
        request: DeleteConversationItemRequest,
    ) -> Result<Opened<DeleteConversationItemResponse, Self::Source>, Failure> {
        let id = &request.conversation_id;
        let answer = upstream
            .client
            .delete(&item_path(id, &request.item_id), upstream.deadline)
            .await;
        let (headers, body, meta) = upstream
            .answer_about(answer, Kind::Conversation, id)
            .await?;
        let answer = DeleteConversationItemResponse {
            conversation: Some(convert::answer(&body, CONVERSATION, &meta)?),
        };
        Ok(Opened::ready(headers, vec![answer], None))
    }
}
