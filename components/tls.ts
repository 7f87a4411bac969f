/**
 * `tls.mode: cloudflare-origin`: a Cloudflare Origin CA certificate for every
 * hostname, and the zone switched to Full (strict) so Cloudflare verifies it.
 * The host layer installs `certificatePem` and `privateKeyPem` for the proxy;
 * the program then calls `requireStrictSsl([app])`, so the zone turns strict
 * only once the host serves this certificate (never 526 in between).
 *
 * Renewal. Cloudflare provider 6.x has no "renew N days before expiry"
 * property on OriginCaCertificate (4.x had `minDaysForRenewal`), so apphost
 * renews by time window: time is cut into windows of
 * `originValidityDays - renewBeforeDays` days, and the key, CSR and
 * certificate are replaced when `pulumi up` runs in a new window. A certificate
 * issued anywhere in window k expires at least `renewBeforeDays` after window
 * k+1 starts (tested as a property), so renewal is never late as long as
 * `pulumi up` runs in that period. It can come up to one window early.
 */
// Type-only at the top: the SDK is loaded where it is used, so stacks without an origin certificate start faster.
import type * as cloudflare from "@pulumi/cloudflare";
import * as pulumi from "@pulumi/pulumi";
import type * as tls from "@pulumi/tls";
import { computed } from "./computed";

export interface OriginCertificateArgs {
  /** The names the certificate covers (apphost:dns.hostnames), the first as its common name */
  hostnames: string[];
  /** apphost:tls.originValidityDays: what the certificate is requested for */
  validityDays: number;
  /** apphost:tls.renewBeforeDays: a new certificate is issued this long before the old one expires */
  renewBeforeDays: number;
  /** `Dns.zoneId`; validation guarantees a zone for tls.mode cloudflare-origin. */
  zoneId: pulumi.Input<string | undefined>;
  /**
   * Key type. ECDSA keys are smaller and faster to handshake, and Cloudflare's
   * edge speaks both to origins.
   * @default "ecdsa"
   */
  keyAlgorithm?: "ecdsa" | "rsa";
  /**
   * The clock the renewal window is computed from; tests pin it.
   * @default new Date()
   */
  now?: Date;
}

const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * Index of the renewal window `now` falls in. Windows are
 * `validityDays - renewBeforeDays` days long and counted from the Unix epoch,
 * so every run within a window agrees without storing anything.
 */
export function renewalWindow(now: Date, validityDays: number, renewBeforeDays: number): number {
  const windowDays = validityDays - renewBeforeDays;
  if (!(windowDays > 0)) {
    throw new Error(
      `renewalWindow: renewBeforeDays (${renewBeforeDays}) must be less than validityDays (${validityDays})`,
    );
  }
  return Math.floor(now.getTime() / (windowDays * DAY_MS));
}

export class OriginCertificate extends pulumi.ComponentResource {
  private readonly name: string;
  /** PEM of the Origin CA certificate */
  readonly certificatePem: pulumi.Output<string>;
  /** PEM of the private key; always a secret */
  readonly privateKeyPem: pulumi.Output<string>;
  /** Expiry as reported by Cloudflare (RFC 3339) */
  readonly expiresOn: pulumi.Output<string>;
  /** The renewal window this certificate belongs to (see the file comment) */
  readonly renewalWindow: number;
  readonly nodes: {
    privateKey: tls.PrivateKey;
    certRequest: tls.CertRequest;
    certificate: cloudflare.OriginCaCertificate;
  };
  private readonly zoneId: pulumi.Output<string>;

  constructor(name: string, args: OriginCertificateArgs, opts?: pulumi.ComponentResourceOptions) {
    super("apphost:index:OriginCertificate", name, {}, opts);
    const cloudflare = require("@pulumi/cloudflare") as typeof import("@pulumi/cloudflare");
    const tls = require("@pulumi/tls") as typeof import("@pulumi/tls");
    this.name = name;
    // Options of every child: hoisted helper functions below cannot use `this` themselves.
    const childOpts = { parent: this };
    const { hostnames } = args;
    const algorithm = args.keyAlgorithm ?? "ecdsa";
    const validity = args.validityDays;
    const window = renewalWindow(args.now ?? new Date(), validity, args.renewBeforeDays);
    const zoneId = pulumi.output(args.zoneId).apply((id) => {
      if (!id)
        throw new Error(
          "OriginCertificate: no Cloudflare zone id (tls.mode cloudflare-origin needs dns.provider cloudflare)",
        );
      return id;
    });

    const privateKey = createPrivateKey();
    const certRequest = createCertRequest();
    const certificate = createCertificate();

    this.renewalWindow = window;
    this.certificatePem = computed(certificate.certificate);
    // The tls provider marks the key secret in real runs; say so explicitly so it holds everywhere.
    this.privateKeyPem = pulumi.secret(computed(privateKey.privateKeyPem));
    this.expiresOn = certificate.expiresOn;
    this.nodes = { privateKey, certRequest, certificate };
    this.zoneId = zoneId;
    this.registerOutputs({
      certificatePem: this.certificatePem,
      privateKeyPem: this.privateKeyPem,
      expiresOn: this.expiresOn,
    });

    function createPrivateKey() {
      return new tls.PrivateKey(
        `${name}-key`,
        algorithm === "rsa"
          ? { algorithm: "RSA", rsaBits: 2048 }
          : { algorithm: "ECDSA", ecdsaCurve: "P256" },
        // A new window also brings a new key (engines that ignore replacementTrigger still renew via the CSR below).
        { ...childOpts, replacementTrigger: window },
      );
    }

    function createCertRequest() {
      return new tls.CertRequest(
        `${name}-csr`,
        {
          privateKeyPem: privateKey.privateKeyPem,
          dnsNames: hostnames,
          // The window in the subject makes the CSR, and so the certificate, change when a window starts.
          subject: { commonName: hostnames[0], organizationalUnit: `apphost renewal window ${window}` },
        },
        childOpts,
      );
    }

    function createCertificate() {
      return new cloudflare.OriginCaCertificate(
        `${name}-certificate`,
        {
          csr: certRequest.certRequestPem,
          hostnames,
          requestType: algorithm === "rsa" ? "origin-rsa" : "origin-ecc",
          requestedValidity: validity,
        },
        // Origin CA certificates cannot be edited, only issued and revoked. Replacement creates the new one first,
        // so the host can switch before the old one is revoked at the end of the run.
        { ...childOpts, replaceOnChanges: ["csr", "hostnames", "requestType", "requestedValidity"] },
      );
    }
  }

  /**
   * Switch the zone to Full (strict), after `after` (the App component: the
   * host installs and serves this certificate first). Earlier, Cloudflare
   * would refuse the origin's previous certificate with 526 until the install.
   * Zone-wide and kept on destroy: other stacks on the zone rely on it too.
   */
  requireStrictSsl(after: pulumi.Input<pulumi.Resource>[]): cloudflare.ZoneSetting {
    const cloudflare = require("@pulumi/cloudflare") as typeof import("@pulumi/cloudflare");
    return new cloudflare.ZoneSetting(
      `${this.name}-ssl-strict`,
      { zoneId: this.zoneId, settingId: "ssl", value: "strict" },
      { parent: this, dependsOn: [this.nodes.certificate, ...after], retainOnDelete: true },
    );
  }
}
