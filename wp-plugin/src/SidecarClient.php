<?php

/**
 * Signed HTTP calls to the sidecar.
 *
 * @package KeycrmBridge
 */

namespace KeycrmBridge;

defined('ABSPATH') || exit;

/**
 * Uses wp_remote_request rather than wp_safe_remote_*: the sidecar usually listens on 127.0.0.1 at a port
 * such as 8787, which the "safe" variants refuse; the URL comes only from an admin with manage_woocommerce.
 */
final class SidecarClient
{
    public function __construct(private string $baseUrl, private string $secret)
    {
    }

    public static function fromSettings(): self
    {
        return new self(Settings::sidecarUrl(), Settings::secret());
    }

    /** @param array<int, array<string, mixed>> $events */
    public function postEvents(array $events, float $timeout): SidecarResponse
    {
        $body = (string) wp_json_encode(
            [
                'site' => mb_substr((string) home_url(), 0, 2048),
                'plugin_version' => KCB_VERSION,
                'events' => array_values($events),
            ],
            JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_PRESERVE_ZERO_FRACTION
        );
        return $this->request('POST', '/v1/events', $body, $timeout);
    }

    /** @param array<string, mixed>|null $payload */
    public function call(string $method, string $path, ?array $payload, float $timeout): SidecarResponse
    {
        $body = $payload === null ? '' : (string) wp_json_encode($payload);
        return $this->request($method, $path, $body, $timeout);
    }

    private function request(string $method, string $path, string $body, float $timeout): SidecarResponse
    {
        if ($this->baseUrl === '' || $this->secret === '') {
            return new SidecarResponse(SidecarResponse::RETRY, 0, null, 'not configured');
        }
        $headers = Signer::headers($this->secret, $body);
        $headers['User-Agent'] = 'keycrm-bridge-plugin/' . KCB_VERSION;
        if ($body !== '') {
            $headers['Content-Type'] = 'application/json';
        }
        $response = wp_remote_request($this->baseUrl . $path, [
            'method' => $method,
            'timeout' => $timeout,
            'redirection' => 0,
            'httpversion' => '1.1',
            'headers' => $headers,
            'body' => $body === '' ? null : $body,
        ]);
        if (is_wp_error($response)) {
            return new SidecarResponse(SidecarResponse::RETRY, 0, null, $response->get_error_message());
        }
        $status = (int) wp_remote_retrieve_response_code($response);
        $raw = (string) wp_remote_retrieve_body($response);
        $data = json_decode($raw, true);
        $data = is_array($data) ? $data : null;
        if ($status >= 200 && $status < 300) {
            if ($data === null) {
                return new SidecarResponse(SidecarResponse::RETRY, $status, null, 'HTTP ' . $status . ' with a body that is not JSON');
            }
            return new SidecarResponse(SidecarResponse::OK, $status, $data, '');
        }
        $error = 'HTTP ' . $status;
        if ($data !== null && isset($data['error'])) {
            $error .= ': ' . (is_string($data['error']) ? $data['error'] : (string) wp_json_encode($data['error']));
        }
        $outcome = match (true) {
            $status === 413 => SidecarResponse::TOO_LARGE,
            $status === 400 || $status === 422 => SidecarResponse::REJECTED,
            default => SidecarResponse::RETRY,
        };
        return new SidecarResponse($outcome, $status, $data, $error);
    }
}
